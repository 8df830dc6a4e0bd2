-- pg_trgm (trusted since PostgreSQL 13, so the database owner may create it): the trigram
-- indexes that let a misspelt word still find its skill. IF NOT EXISTS leaves an installation
-- made by someone else (in whatever schema) alone.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- array_to_string is only STABLE (it calls element output functions in general); for text[]
-- it depends on nothing but its argument, which a generated column needs declared.
CREATE FUNCTION skills.words_of(tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN translate(array_to_string(tags, ' '), '-_', '  ');

CREATE TABLE skills.skills (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    category text NOT NULL,
    description text NOT NULL,
    tags text[] NOT NULL DEFAULT '{}',
    content text NOT NULL,
    date_created timestamptz NOT NULL,
    date_updated timestamptz NOT NULL,
    -- Weighted: a word of the name counts most, then tags, description, content.
    search tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, translate(name, '-_', '  ')), 'A')
        || setweight(to_tsvector('english'::regconfig, skills.words_of(tags)), 'B')
        || setweight(to_tsvector('english'::regconfig, description), 'C')
        || setweight(to_tsvector('english'::regconfig, content), 'D')
    ) STORED
);

CREATE INDEX skills_search ON skills.skills USING gin (search);
CREATE INDEX skills_name_trgm ON skills.skills USING gin (name gin_trgm_ops);
CREATE INDEX skills_tags ON skills.skills USING gin (tags);
CREATE INDEX skills_category ON skills.skills (category, date_updated);
CREATE INDEX skills_date_updated ON skills.skills (date_updated);

-- Every word of the catalogue, for correcting a query's misspelt words to the nearest one.
CREATE TABLE skills.lexicon (
    word text PRIMARY KEY
);
CREATE INDEX lexicon_word_trgm ON skills.lexicon USING gin (word gin_trgm_ops);

CREATE TABLE skills.skill_edges (
    from_skill uuid NOT NULL REFERENCES skills.skills (id) ON DELETE CASCADE,
    to_skill uuid NOT NULL REFERENCES skills.skills (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('explicit', 'shared_tags', 'co_activation')),
    weight double precision NOT NULL CHECK (weight > 0 AND weight <= 1),
    PRIMARY KEY (from_skill, to_skill, kind),
    CHECK (from_skill <> to_skill),
    -- Symmetric kinds are stored once per pair, the smaller id first.
    CHECK (kind = 'explicit' OR from_skill < to_skill)
);
CREATE INDEX skill_edges_to ON skills.skill_edges (to_skill);

-- One row per skill per activation call: the base level reads a user's own history.
CREATE TABLE skills.activations (
    user_id uuid NOT NULL,
    skill_id uuid NOT NULL REFERENCES skills.skills (id) ON DELETE CASCADE,
    activated_at timestamptz NOT NULL
);
CREATE INDEX activations_user ON skills.activations (user_id, activated_at DESC);
