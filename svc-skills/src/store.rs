//! Every SQL statement of svc-skills.

use chrono::{DateTime, Utc};
use common::sql;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::SkillsError;

/// Weights of `ts_rank` for the D, C, B and A parts of the search vector: content, description,
/// tags, name.
const RANK_WEIGHTS: &str = "'{0.1, 0.2, 0.4, 1.0}'";
/// What a trigram match of the whole query against a name adds to the score.
const NAME_SIMILARITY_WEIGHT: f64 = 0.5;
/// The strongest postings of each lexeme a search ranks (see `V2__postings.sql`): with at most
/// [`crate::text::MAX_QUERY_WORDS`] words, a search ranks at most 32 × 64 skills.
const POSTINGS_PER_LEXEME: i64 = 64;
/// Only a query this short is compared with names by trigrams: a longer one is a task, not a
/// name, and its many trigrams would visit much of the name index for nothing.
const MAX_NAME_QUERY_LEN: i64 = 40;

/// The ids of the skills holding the strongest postings of `lexemes` (a `text[]` expression).
fn strongest_postings(lexemes: &str) -> String {
    format!(
        "SELECT DISTINCT p.skill_id AS id FROM unnest({lexemes}) AS term(lexeme) \
         CROSS JOIN LATERAL (SELECT skill_id FROM skills.postings \
           WHERE lexeme = term.lexeme ORDER BY impact DESC, skill_id \
           LIMIT {POSTINGS_PER_LEXEME}) p"
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct SkillRow {
    pub id: Uuid,
    pub name: String,
    pub category: String,
    pub description: String,
    pub tags: Vec<String>,
    pub content: String,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
}

const COLUMNS: &str = "s.id, s.name, s.category, s.description, s.tags, s.content, \
                       s.date_created, s.date_updated";

impl SkillRow {
    /// The row's first eight columns, in [`COLUMNS`]' order.
    fn of(row: &Row) -> Self {
        Self {
            id: row.get(0),
            name: row.get(1),
            category: row.get(2),
            description: row.get(3),
            tags: row.get(4),
            content: row.get(5),
            date_created: row.get(6),
            date_updated: row.get(7),
        }
    }
}

/// What a new or changed skill holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFields {
    pub name: String,
    pub category: String,
    pub description: String,
    pub tags: Vec<String>,
    pub content: String,
}

pub async fn by_id(db: &impl GenericClient, id: Uuid) -> Result<Option<SkillRow>, SkillsError> {
    let sql = format!("SELECT {COLUMNS} FROM skills.skills s WHERE s.id = $1");
    Ok(sql::query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(SkillRow::of))
}

pub async fn by_name(db: &impl GenericClient, name: &str) -> Result<Option<SkillRow>, SkillsError> {
    let sql = format!("SELECT {COLUMNS} FROM skills.skills s WHERE s.name = $1");
    Ok(sql::query_opt(db, &sql, &[&name])
        .await?
        .as_ref()
        .map(SkillRow::of))
}

pub async fn by_ids(db: &impl GenericClient, ids: &[Uuid]) -> Result<Vec<SkillRow>, SkillsError> {
    let sql = format!("SELECT {COLUMNS} FROM skills.skills s WHERE s.id = ANY($1)");
    let rows = sql::query(db, &sql, &[&ids]).await?;
    Ok(rows.iter().map(SkillRow::of).collect())
}

/// Ids of the skills with these names (unknown names are left out).
pub async fn ids_of_names(
    db: &impl GenericClient,
    names: &[String],
) -> Result<Vec<(String, Uuid)>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT name, id FROM skills.skills WHERE name = ANY($1)",
        &[&names],
    )
    .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

pub async fn count(db: &impl GenericClient) -> Result<i64, SkillsError> {
    let row = sql::query_one(db, "SELECT count(*) FROM skills.skills", &[]).await?;
    Ok(row.get(0))
}

pub struct ListFilter<'a> {
    pub category: Option<&'a str>,
    pub tags: &'a [String],
    pub all_tags: bool,
    /// A column of [`crate::service::SORTABLE`]; never text from a request.
    pub sort_column: &'static str,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
}

const LIST_FILTER: &str = "($1::text IS NULL OR s.category = $1) \
     AND (cardinality($2::text[]) = 0 OR (CASE WHEN $3 THEN s.tags @> $2 ELSE s.tags && $2 END))";

/// (total in the catalogue, passing the filter, the page).
pub async fn list(
    db: &impl GenericClient,
    filter: &ListFilter<'_>,
) -> Result<(i64, i64, Vec<SkillRow>), SkillsError> {
    let counts = sql::query_one(
        db,
        &format!(
            "SELECT (SELECT count(*) FROM skills.skills), \
                    (SELECT count(*) FROM skills.skills s WHERE {LIST_FILTER})"
        ),
        &[&filter.category, &filter.tags, &filter.all_tags],
    )
    .await?;
    let direction = if filter.descending { "DESC" } else { "ASC" };
    let page = format!(
        "SELECT {COLUMNS} FROM skills.skills s WHERE {LIST_FILTER} \
         ORDER BY s.{} {direction}, s.name {direction} LIMIT $4 OFFSET $5",
        filter.sort_column
    );
    let rows = sql::query(
        db,
        &page,
        &[
            &filter.category,
            &filter.tags,
            &filter.all_tags,
            &filter.limit,
            &filter.offset,
        ],
    )
    .await?;
    Ok((
        counts.get(0),
        counts.get(1),
        rows.iter().map(SkillRow::of).collect(),
    ))
}

pub async fn insert(
    db: &impl GenericClient,
    id: Uuid,
    fields: &SkillFields,
    now: DateTime<Utc>,
) -> Result<SkillRow, SkillsError> {
    let sql = format!(
        "INSERT INTO skills.skills AS s \
           (id, name, category, description, tags, content, date_created, date_updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (name) DO NOTHING RETURNING {COLUMNS}"
    );
    let row = sql::query_opt(
        db,
        &sql,
        &[
            &id,
            &fields.name,
            &fields.category,
            &fields.description,
            &fields.tags,
            &fields.content,
            &now,
        ],
    )
    .await?;
    row.as_ref()
        .map(SkillRow::of)
        .ok_or_else(|| SkillsError::NameTaken(fields.name.clone()))
}

/// `None`: no such skill. A name another skill has is [`SkillsError::NameTaken`].
pub async fn update(
    db: &impl GenericClient,
    id: Uuid,
    fields: &SkillFields,
    now: DateTime<Utc>,
) -> Result<Option<SkillRow>, SkillsError> {
    let sql = format!(
        "UPDATE skills.skills s SET name = $2, category = $3, description = $4, tags = $5, \
           content = $6, date_updated = $7 WHERE s.id = $1 RETURNING {COLUMNS}"
    );
    let updated = sql::query_opt(
        db,
        &sql,
        &[
            &id,
            &fields.name,
            &fields.category,
            &fields.description,
            &fields.tags,
            &fields.content,
            &now,
        ],
    )
    .await;
    match updated {
        Ok(row) => Ok(row.as_ref().map(SkillRow::of)),
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Err(SkillsError::NameTaken(fields.name.clone()))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn delete(db: &impl GenericClient, id: Uuid) -> Result<bool, SkillsError> {
    let deleted = sql::execute(db, "DELETE FROM skills.skills WHERE id = $1", &[&id]).await?;
    Ok(deleted > 0)
}

pub async fn add_words(db: &impl GenericClient, words: &[String]) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "INSERT INTO skills.lexicon (word) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        &[&words],
    )
    .await?;
    Ok(())
}

/// Names of the skills `id` lists as related, sorted.
pub async fn explicit_related(
    db: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<String>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT s.name FROM skills.skill_edges e JOIN skills.skills s ON s.id = e.to_skill \
         WHERE e.from_skill = $1 AND e.kind = 'explicit' ORDER BY s.name",
        &[&id],
    )
    .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Replaces the explicit edges from `id` with edges to `related`, each of `weight`.
pub async fn set_explicit(
    db: &impl GenericClient,
    id: Uuid,
    related: &[Uuid],
    weight: f64,
) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "DELETE FROM skills.skill_edges WHERE from_skill = $1 AND kind = 'explicit' \
           AND NOT (to_skill = ANY($2))",
        &[&id, &related],
    )
    .await?;
    sql::execute(
        db,
        "INSERT INTO skills.skill_edges (from_skill, to_skill, kind, weight) \
         SELECT $1, other, 'explicit', $3 FROM unnest($2::uuid[]) AS other WHERE other <> $1 \
         ON CONFLICT (from_skill, to_skill, kind) DO UPDATE SET weight = excluded.weight",
        &[&id, &related, &weight],
    )
    .await?;
    Ok(())
}

/// Recomputes the `shared_tags` edges of `id`: one to every skill whose tags overlap with a
/// Jaccard index of at least `min_jaccard`, weighted by that index.
pub async fn refresh_shared_tags(
    db: &impl GenericClient,
    id: Uuid,
    min_jaccard: f64,
) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "DELETE FROM skills.skill_edges WHERE kind = 'shared_tags' \
           AND (from_skill = $1 OR to_skill = $1)",
        &[&id],
    )
    .await?;
    sql::execute(
        db,
        "INSERT INTO skills.skill_edges (from_skill, to_skill, kind, weight) \
         SELECT least(me.id, other.id), greatest(me.id, other.id), 'shared_tags', overlap.jaccard \
         FROM skills.skills me \
         JOIN skills.skills other ON other.id <> me.id AND other.tags && me.tags \
         CROSS JOIN LATERAL ( \
           SELECT (SELECT count(*) FROM (SELECT unnest(me.tags) INTERSECT SELECT unnest(other.tags)) i)::float8 \
                / (SELECT count(*) FROM (SELECT unnest(me.tags) UNION SELECT unnest(other.tags)) u) AS jaccard \
         ) overlap \
         WHERE me.id = $1 AND overlap.jaccard >= $2",
        &[&id, &min_jaccard],
    )
    .await?;
    Ok(())
}

/// One neighbour of a skill: the pair's weight (its edges summed, at most 1) and the kinds of
/// those edges, strongest first.
pub struct Neighbour {
    pub skill: SkillRow,
    pub weight: f64,
    pub kinds: Vec<String>,
}

pub async fn related(
    db: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<Neighbour>, SkillsError> {
    let sql = format!(
        "WITH edges AS ( \
           SELECT to_skill AS other, kind, weight FROM skills.skill_edges WHERE from_skill = $1 \
           UNION ALL \
           SELECT from_skill, kind, weight FROM skills.skill_edges WHERE to_skill = $1 \
         ), pairs AS ( \
           SELECT other, least(1.0, sum(weight))::float8 AS weight, \
                  array_agg(DISTINCT kind) AS kinds, max(weight) AS strongest \
           FROM edges GROUP BY other \
         ) \
         SELECT {COLUMNS}, p.weight, p.kinds FROM pairs p JOIN skills.skills s ON s.id = p.other \
         ORDER BY p.weight DESC, p.strongest DESC, s.name LIMIT $2"
    );
    let rows = sql::query(db, &sql, &[&id, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| Neighbour {
            skill: SkillRow::of(row),
            weight: row.get(8),
            kinds: row.get(9),
        })
        .collect())
}

/// Each word with the catalogue word nearest to it (itself when the catalogue has it; the most
/// similar by trigrams, above pg_trgm's similarity threshold, otherwise; `None` when nothing is
/// near), and the English lexeme of that word (`None` for a stop word).
pub async fn nearest_words(
    db: &impl GenericClient,
    words: &[String],
) -> Result<Vec<(String, Option<String>, Option<String>)>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT q.word, n.nearest, \
                (tsvector_to_array(to_tsvector('english', coalesce(n.nearest, q.word))))[1] \
         FROM unnest($1::text[]) WITH ORDINALITY AS q(word, position) \
         CROSS JOIN LATERAL (SELECT coalesce( \
           (SELECT l.word FROM skills.lexicon l WHERE l.word = q.word), \
           (SELECT l.word FROM skills.lexicon l WHERE length(q.word) >= 4 AND l.word % q.word \
              ORDER BY similarity(l.word, q.word) DESC, l.word LIMIT 1)) AS nearest) n \
         ORDER BY q.position",
        &[&words],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

pub struct Hit {
    pub skill: SkillRow,
    pub score: f64,
    pub snippet: String,
}

/// Full-text search with `tsquery` (text for `to_tsquery`, words joined by `|`), plus the
/// trigram similarity of the whole `query` to each name.
pub async fn search(
    db: &impl GenericClient,
    tsquery: &str,
    query: &str,
    limit: i64,
) -> Result<Vec<Hit>, SkillsError> {
    let rows = sql::query(db, &search_statement(), &[&tsquery, &query, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| Hit {
            skill: SkillRow::of(row),
            score: row.get(8),
            snippet: row.get(9),
        })
        .collect())
}

/// [`search`]'s statement ($1 tsquery text, $2 query, $3 limit), for the benchmark to run raw.
pub fn search_statement() -> String {
    format!(
        "WITH q AS (SELECT to_tsquery('english', $1) AS tsq), \
         candidates AS ( \
           {} \
           UNION SELECT id FROM skills.skills WHERE length($2) <= {MAX_NAME_QUERY_LEN} AND name % $2 \
         ), \
         hits AS ( \
           SELECT s.*, ts_rank({RANK_WEIGHTS}, s.search, q.tsq) \
                  + {NAME_SIMILARITY_WEIGHT} * similarity(s.name, $2) AS score \
           FROM skills.skills s JOIN candidates USING (id), q \
           WHERE s.search @@ q.tsq OR s.name % $2 \
           ORDER BY score DESC, s.name LIMIT $3 \
         ) \
         SELECT {COLUMNS}, s.score::float8, \
           ts_headline('english', s.description || E'\\n' || s.content, q.tsq, \
             'StartSel=<mark>, StopSel=</mark>, MaxFragments=2, MaxWords=18, MinWords=6, FragmentDelimiter=\" … \"') \
         FROM hits s, q ORDER BY s.score DESC, s.name",
        strongest_postings("tsvector_to_array(to_tsvector('english', $2))")
    )
}

/// A skill the task's words reach: its text rank and which of its tags (every lexeme of the tag
/// among `lexemes`) and which of the lexemes it holds.
pub struct Matched {
    pub id: Uuid,
    pub name: String,
    pub text_rank: f64,
    pub matched_tags: Vec<String>,
    pub matched_lexemes: Vec<String>,
}

pub async fn matching(
    db: &impl GenericClient,
    tsquery: &str,
    lexemes: &[String],
    limit: i64,
) -> Result<Vec<Matched>, SkillsError> {
    let rows = sql::query(db, &matching_statement(), &[&tsquery, &lexemes, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| Matched {
            id: row.get(0),
            name: row.get(1),
            text_rank: row.get(2),
            matched_tags: row.get(3),
            matched_lexemes: row.get(4),
        })
        .collect())
}

/// [`matching`]'s statement ($1 tsquery text, $2 lexemes, $3 limit), for the benchmark to run
/// raw.
pub fn matching_statement() -> String {
    format!(
        "WITH q AS (SELECT to_tsquery('english', $1) AS tsq) \
         SELECT s.id, s.name, ts_rank({RANK_WEIGHTS}, s.search, q.tsq)::float8, \
           ARRAY(SELECT t FROM unnest(s.tags) t \
                 WHERE tsvector_to_array(to_tsvector('english', translate(t, '-_', '  '))) <@ $2::text[] \
                   AND length(to_tsvector('english', translate(t, '-_', '  '))) > 0 ORDER BY t), \
           ARRAY(SELECT v.lexeme FROM unnest(s.search) v WHERE v.lexeme = ANY($2) ORDER BY v.lexeme) \
         FROM skills.skills s JOIN ({}) candidates USING (id), q WHERE s.search @@ q.tsq \
         ORDER BY ts_rank({RANK_WEIGHTS}, s.search, q.tsq) DESC, s.name LIMIT $3",
        strongest_postings("$2::text[]")
    )
}

/// (from, to, weight) of every edge touching one of `ids`, either way.
pub async fn edges_touching(
    db: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid, f64)>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT from_skill, to_skill, weight FROM skills.skill_edges \
         WHERE from_skill = ANY($1) OR to_skill = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

pub async fn names_of(
    db: &impl GenericClient,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT id, name FROM skills.skills WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// The user's activations of these skills up to `now`, newest first, at most `limit`.
pub async fn history(
    db: &impl GenericClient,
    user_id: Uuid,
    skills: &[Uuid],
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, SkillsError> {
    let rows = sql::query(
        db,
        "SELECT skill_id, activated_at FROM skills.activations \
         WHERE user_id = $1 AND skill_id = ANY($2) AND activated_at <= $3 \
         ORDER BY activated_at DESC LIMIT $4",
        &[&user_id, &skills, &now, &limit],
    )
    .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

pub async fn record_activations(
    db: &impl GenericClient,
    user_id: Uuid,
    skills: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "INSERT INTO skills.activations (user_id, skill_id, activated_at) \
         SELECT $1, skill, $3 FROM unnest($2::uuid[]) AS skill",
        &[&user_id, &skills, &now],
    )
    .await?;
    Ok(())
}

/// Strengthens the `co_activation` edge of every pair of `skills` by `step`, up to 1.
pub async fn grow_co_activation(
    db: &impl GenericClient,
    skills: &[Uuid],
    step: f64,
) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "INSERT INTO skills.skill_edges (from_skill, to_skill, kind, weight) \
         SELECT a, b, 'co_activation', $2 FROM unnest($1::uuid[]) a, unnest($1::uuid[]) b \
         WHERE a < b \
         ON CONFLICT (from_skill, to_skill, kind) \
         DO UPDATE SET weight = least(1.0, skills.skill_edges.weight + $2)",
        &[&skills, &step],
    )
    .await?;
    Ok(())
}

/// Serialises imports: two replicas seeding a fresh catalogue at once would both create.
pub async fn lock_imports(db: &impl GenericClient) -> Result<(), SkillsError> {
    sql::execute(
        db,
        "SELECT pg_advisory_xact_lock(hashtextextended('genie-skills-import', 0))",
        &[],
    )
    .await?;
    Ok(())
}
