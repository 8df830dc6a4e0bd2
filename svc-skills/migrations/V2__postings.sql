-- Impact-ordered postings: for each lexeme, the skills holding it with the weight it has there
-- (each occurrence counts its part's rank weight: name 1.0, tags 0.4, description 0.2, content
-- 0.1, as ts_rank weighs them). A search takes the strongest postings of each of its lexemes as
-- its candidates, so the rows it ranks are bounded however many skills hold a common word; the
-- GIN index alone would hand every one of them to ts_rank.
CREATE TABLE skills.postings (
    lexeme text NOT NULL,
    skill_id uuid NOT NULL REFERENCES skills.skills (id) ON DELETE CASCADE,
    impact real NOT NULL,
    PRIMARY KEY (skill_id, lexeme)
);
CREATE INDEX postings_strongest ON skills.postings (lexeme, impact DESC, skill_id);

-- Kept by the database itself, in the transaction of the write, whoever writes (the service, an
-- import, a bulk load): one statement per write statement, over the rows it changed.
CREATE FUNCTION skills.index_postings() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM skills.postings p USING changed c WHERE p.skill_id = c.id;
    INSERT INTO skills.postings (lexeme, skill_id, impact)
    SELECT v.lexeme, c.id,
           coalesce((SELECT sum(CASE w WHEN 'A' THEN 1.0 WHEN 'B' THEN 0.4 WHEN 'C' THEN 0.2 ELSE 0.1 END)
                     FROM unnest(v.weights) w), 0.1)
    FROM changed c, unnest(c.search) v;
    RETURN NULL;
END;
$$;

CREATE TRIGGER postings_of_inserted AFTER INSERT ON skills.skills
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION skills.index_postings();
CREATE TRIGGER postings_of_updated AFTER UPDATE ON skills.skills
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION skills.index_postings();

INSERT INTO skills.postings (lexeme, skill_id, impact)
SELECT v.lexeme, s.id,
       coalesce((SELECT sum(CASE w WHEN 'A' THEN 1.0 WHEN 'B' THEN 0.4 WHEN 'C' THEN 0.2 ELSE 0.1 END)
                 FROM unnest(v.weights) w), 0.1)
FROM skills.skills s, unnest(s.search) v;
