-- The six super-concepts content is classified along (the original's taxonomy_dimensions).
CREATE TABLE queue.taxonomy_dimensions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    concept_name text NOT NULL UNIQUE,
    description text NOT NULL,
    display_order integer NOT NULL UNIQUE
);

-- Tags and the concept each belongs to, with a weight (how surely the tag says something of
-- that concept, 0 to 1) and the other spellings that mean the same tag. Tags and aliases are
-- kept lower case, words separated by one space; a tag may belong to several concepts.
CREATE TABLE queue.taxonomy_mapping (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tag text NOT NULL CHECK (tag = lower(tag) AND tag <> ''),
    dimension_id uuid NOT NULL REFERENCES queue.taxonomy_dimensions (id) ON DELETE CASCADE,
    weight real NOT NULL CHECK (weight > 0 AND weight <= 1),
    aliases jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(aliases) = 'array'),
    UNIQUE (tag, dimension_id)
);

CREATE INDEX taxonomy_mapping_by_tag ON queue.taxonomy_mapping (tag);
CREATE INDEX taxonomy_mapping_by_alias ON queue.taxonomy_mapping USING gin (aliases);

INSERT INTO queue.taxonomy_dimensions (concept_name, description, display_order) VALUES
  ('Intimacy Level', 'How personal or revealing the content is, from public-safe to exclusive.', 1),
  ('Production Quality', 'How the content was made: phone snapshot to studio production.', 2),
  ('Content Type', 'The form of the content: photo set, video, livestream, text, audio.', 3),
  ('Audience Appeal', 'Which audience or niche the content speaks to.', 4),
  ('Platform Fit', 'Where the content belongs: which platforms and placements suit it.', 5),
  ('Engagement Potential', 'How likely the content is to draw likes, comments, tips and messages.', 6);

-- The seed set, written for this platform (svc-queue/README.md, "Taxonomy"): the original's
-- 3,208 classified tags were not among its documents, so these are the common tags of creator
-- content, grouped under the six concepts by the definitions above.
INSERT INTO queue.taxonomy_mapping (tag, dimension_id, weight, aliases)
SELECT seed.tag, d.id, seed.weight, seed.aliases::jsonb
FROM (VALUES
  ('Intimacy Level', 'sfw', 0.95, '["safe for work", "public"]'),
  ('Intimacy Level', 'casual', 0.6, '["everyday", "candid"]'),
  ('Intimacy Level', 'selfie', 0.5, '["selfies", "self portrait"]'),
  ('Intimacy Level', 'lingerie', 0.85, '["underwear", "lingerie set"]'),
  ('Intimacy Level', 'boudoir', 0.9, '["boudoir shoot"]'),
  ('Intimacy Level', 'swimwear', 0.7, '["bikini", "swimsuit"]'),
  ('Intimacy Level', 'implied', 0.8, '["implied nude", "teasing"]'),
  ('Intimacy Level', 'exclusive', 0.9, '["vip", "members only", "ppv"]'),
  ('Intimacy Level', 'personal', 0.75, '["diary", "day in my life"]'),
  ('Intimacy Level', 'bedroom', 0.7, '["in bed"]'),
  ('Production Quality', 'studio', 0.95, '["studio shoot", "studio lighting"]'),
  ('Production Quality', 'professional', 0.9, '["pro shoot", "photographer"]'),
  ('Production Quality', 'phone', 0.6, '["iphone", "phone camera", "mobile"]'),
  ('Production Quality', 'natural light', 0.65, '["golden hour", "window light"]'),
  ('Production Quality', '4k', 0.9, '["uhd", "ultra hd"]'),
  ('Production Quality', 'hd', 0.7, '["1080p", "full hd"]'),
  ('Production Quality', 'edited', 0.75, '["retouched", "color graded"]'),
  ('Production Quality', 'raw', 0.6, '["unedited", "no filter"]'),
  ('Production Quality', 'lo fi', 0.55, '["lofi", "grainy"]'),
  ('Production Quality', 'cinematic', 0.9, '["film look"]'),
  ('Content Type', 'photo', 0.9, '["photos", "picture", "pic"]'),
  ('Content Type', 'photo set', 0.95, '["photoset", "gallery", "album"]'),
  ('Content Type', 'video', 0.9, '["videos", "clip", "clips"]'),
  ('Content Type', 'livestream', 0.95, '["live", "stream", "going live"]'),
  ('Content Type', 'behind the scenes', 0.85, '["bts", "making of"]'),
  ('Content Type', 'tutorial', 0.85, '["how to", "guide"]'),
  ('Content Type', 'voice note', 0.85, '["audio", "voice message"]'),
  ('Content Type', 'poll', 0.8, '["vote", "question"]'),
  ('Content Type', 'story', 0.75, '["stories"]'),
  ('Content Type', 'teaser', 0.85, '["preview", "sneak peek"]'),
  ('Audience Appeal', 'cosplay', 0.9, '["costume", "cosplayer"]'),
  ('Audience Appeal', 'fitness', 0.9, '["gym", "workout", "fit"]'),
  ('Audience Appeal', 'gaming', 0.9, '["gamer", "twitch"]'),
  ('Audience Appeal', 'fashion', 0.85, '["outfit", "ootd", "style"]'),
  ('Audience Appeal', 'alt', 0.8, '["alternative", "goth", "e girl"]'),
  ('Audience Appeal', 'girl next door', 0.75, '["gnd"]'),
  ('Audience Appeal', 'glamour', 0.8, '["glam"]'),
  ('Audience Appeal', 'travel', 0.75, '["vacation", "holiday"]'),
  ('Audience Appeal', 'couples', 0.85, '["couple", "partner"]'),
  ('Audience Appeal', 'tattoo', 0.75, '["tattoos", "inked"]'),
  ('Platform Fit', 'onlyfans', 0.95, '["of", "only fans"]'),
  ('Platform Fit', 'fansly', 0.95, '["fansly exclusive"]'),
  ('Platform Fit', 'instagram', 0.9, '["ig", "insta"]'),
  ('Platform Fit', 'tiktok', 0.9, '["tik tok", "fyp"]'),
  ('Platform Fit', 'twitter', 0.85, '["x", "tweet"]'),
  ('Platform Fit', 'reddit', 0.85, '["subreddit"]'),
  ('Platform Fit', 'vertical', 0.7, '["9:16", "portrait video", "reel"]'),
  ('Platform Fit', 'square', 0.6, '["1:1"]'),
  ('Platform Fit', 'sfw', 0.8, '["safe for work", "public"]'),
  ('Platform Fit', 'exclusive', 0.7, '["vip", "members only", "ppv"]'),
  ('Engagement Potential', 'giveaway', 0.9, '["contest", "free"]'),
  ('Engagement Potential', 'custom request', 0.9, '["customs", "request"]'),
  ('Engagement Potential', 'q and a', 0.85, '["q&a", "ama", "ask me anything"]'),
  ('Engagement Potential', 'trending', 0.85, '["viral", "trend"]'),
  ('Engagement Potential', 'new', 0.6, '["new post", "just posted", "fresh"]'),
  ('Engagement Potential', 'collab', 0.85, '["collaboration", "feat"]'),
  ('Engagement Potential', 'tip goal', 0.9, '["tip menu", "tips"]'),
  ('Engagement Potential', 'poll', 0.85, '["vote", "question"]'),
  ('Engagement Potential', 'livestream', 0.8, '["live", "stream", "going live"]'),
  ('Engagement Potential', 'teaser', 0.75, '["preview", "sneak peek"]')
) AS seed (concept, tag, weight, aliases)
JOIN queue.taxonomy_dimensions d ON d.concept_name = seed.concept;

-- The original's content library (scraped_media), each row of an owner's creator profile.
CREATE TABLE queue.scraped_media (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL,
    creator_profile_id uuid NOT NULL,
    platform_post_id text,
    media_type text NOT NULL CHECK (media_type IN ('image', 'video', 'gallery')),
    file_id uuid REFERENCES queue.files (id) ON DELETE SET NULL,
    caption text,
    tags jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(tags) = 'array'),
    published_at timestamptz,
    likes integer NOT NULL DEFAULT 0 CHECK (likes >= 0),
    comments integer NOT NULL DEFAULT 0 CHECK (comments >= 0),
    earnings numeric(14, 2),
    taxonomy_concepts jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_profile_id, platform_post_id)
);

CREATE INDEX scraped_media_by_profile ON queue.scraped_media (creator_profile_id);
CREATE INDEX scraped_media_by_owner ON queue.scraped_media (owner_id, created_at DESC);

-- The original's fan_profiles: a creator profile's fans and their engagement.
CREATE TABLE queue.fan_profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL,
    creator_profile_id uuid NOT NULL,
    platform_fan_id text NOT NULL,
    username text,
    engagement_score integer NOT NULL DEFAULT 0,
    total_spent numeric(14, 2) NOT NULL DEFAULT 0 CHECK (total_spent >= 0),
    last_interaction timestamptz,
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (creator_profile_id, platform_fan_id)
);

CREATE INDEX fan_profiles_by_owner ON queue.fan_profiles (owner_id, engagement_score DESC, id);

-- The original's scheduled_posts. Due posts become publish_post jobs: the scheduler takes them
-- FOR UPDATE SKIP LOCKED and, in the same transaction, stores the job (under the key
-- `publish-<post id>`, unique per owner) and moves the post to `publishing`.
CREATE TABLE queue.scheduled_posts (
    id uuid PRIMARY KEY,
    owner_id uuid NOT NULL,
    -- The tier the owner had when scheduling: the publication's quota is consumed under it.
    owner_tier text NOT NULL,
    creator_profile_id uuid NOT NULL,
    platform text NOT NULL,
    file_id uuid REFERENCES queue.files (id) ON DELETE SET NULL,
    media_id uuid REFERENCES queue.scraped_media (id) ON DELETE SET NULL,
    scheduled_for timestamptz NOT NULL,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'publishing', 'published', 'failed', 'cancelled')),
    caption text NOT NULL DEFAULT '',
    platform_specific_config jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(platform_specific_config) = 'object'),
    published_at timestamptz,
    error_message text,
    job_id uuid REFERENCES queue.media_jobs (id) ON DELETE SET NULL,
    idempotency_key text NOT NULL,
    request_digest bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, idempotency_key)
);

CREATE INDEX scheduled_posts_due ON queue.scheduled_posts (scheduled_for) WHERE status = 'pending';
CREATE INDEX scheduled_posts_by_owner ON queue.scheduled_posts (owner_id, scheduled_for DESC, id);
CREATE INDEX scheduled_posts_by_job ON queue.scheduled_posts (job_id);
