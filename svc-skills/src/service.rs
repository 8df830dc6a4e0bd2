//! What svc-skills does, as plain async methods over the database; the gRPC layer only
//! translates. These methods are the authority on every rule of the catalogue.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::clock::Clock;
use common::identity::Identity;
use deadpool_postgres::{GenericClient, Pool};
use uuid::Uuid;

use crate::activation::{self, Graph, PARAMS, Seed};
use crate::catalogue::{self, SkillDoc};
use crate::error::SkillsError;
use crate::store::{self, Hit, Neighbour, SkillFields, SkillRow};
use crate::text;

/// The fields `sort` may name.
pub const SORTABLE: [&str; 4] = ["name", "category", "date_created", "date_updated"];
pub const DEFAULT_SORT: &str = "-date_updated";
pub const DEFAULT_LIST_LIMIT: u32 = 50;
pub const MAX_LIST_LIMIT: u32 = 500;
pub const DEFAULT_SEARCH_LIMIT: u32 = 20;
pub const MAX_SEARCH_LIMIT: u32 = 100;
pub const DEFAULT_RELATED_LIMIT: u32 = 10;
pub const MAX_RELATED_LIMIT: u32 = 100;
pub const DEFAULT_ACTIVATE_LIMIT: u32 = 5;
pub const MAX_ACTIVATE_LIMIT: u32 = 50;
pub const MAX_QUERY_LEN: usize = 500;
pub const MAX_TASK_LEN: usize = 4000;
/// Weight of an edge a skill's `related` names.
pub const EXPLICIT_WEIGHT: f64 = 0.8;
/// Two skills get a `shared_tags` edge when the Jaccard index of their tags is at least this.
pub const MIN_SHARED_TAGS_JACCARD: f64 = 0.25;
/// What one activation together adds to the `co_activation` edge of a pair (up to 1).
pub const CO_ACTIVATION_STEP: f64 = 0.1;
/// Directly matched skills an activation considers, best text rank first.
pub const ACTIVATION_CANDIDATES: i64 = 200;
/// Activations of the user read for the base level.
const HISTORY_LIMIT: i64 = 2000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub category: String,
    pub tags: Vec<String>,
    pub tags_mode: String,
    pub limit: Option<u32>,
    pub offset: u32,
    pub sort: String,
}

pub struct Page {
    pub skills: Vec<SkillRow>,
    pub total_count: i64,
    pub filter_count: i64,
}

/// A change: `None` keeps the field.
#[derive(Debug, Clone, Default)]
pub struct SkillPatch {
    pub name: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    pub content: Option<String>,
    pub related: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub from: String,
    pub to: String,
}

pub struct SearchAnswer {
    pub hits: Vec<Hit>,
    pub corrections: Vec<Correction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Why {
    pub matched_tags: Vec<String>,
    pub matched_words: Vec<String>,
    pub base_level: f64,
    pub path: Vec<String>,
    pub seed: f64,
    pub spread: f64,
}

pub struct Activated {
    pub skill: SkillRow,
    pub activation_score: f64,
    pub why: Why,
}

pub struct ActivationAnswer {
    pub skills: Vec<Activated>,
    pub corrections: Vec<Correction>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
}

/// `sort` as (column, descending). Only [`SORTABLE`] names pass, so the column is never text
/// from the request.
pub fn parse_sort(sort: &str) -> Result<(&'static str, bool), SkillsError> {
    let sort = match sort.trim() {
        "" => DEFAULT_SORT,
        given => given,
    };
    let (field, descending) = match sort.strip_prefix('-') {
        Some(field) => (field, true),
        None => (sort, false),
    };
    SORTABLE
        .iter()
        .find(|known| **known == field)
        .map(|known| (*known, descending))
        .ok_or_else(|| {
            SkillsError::invalid(
                "sort",
                format!(
                    "sort must be one of {}, with `-` first for descending",
                    SORTABLE.join(", ")
                ),
            )
        })
}

fn limit(field: &str, given: Option<u32>, default: u32, max: u32) -> Result<i64, SkillsError> {
    match given.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(i64::from(n)),
        _ => Err(SkillsError::invalid(
            field,
            format!("{field} must be an integer from 1 to {max}"),
        )),
    }
}

fn bounded_text(field: &str, text: &str, max: usize) -> Result<String, SkillsError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(SkillsError::missing(field));
    }
    if text.len() > max {
        return Err(SkillsError::invalid(
            field,
            format!("{field} must be at most {max} bytes"),
        ));
    }
    Ok(text.to_owned())
}

/// The words of a query or task, each corrected to the nearest catalogue word, the corrections
/// made, and each lexeme with the word it came from.
struct ReadWords {
    words: Vec<String>,
    corrections: Vec<Correction>,
    lexemes: BTreeMap<String, String>,
}

async fn read_words(
    db: &impl GenericClient,
    field: &str,
    text: &str,
) -> Result<ReadWords, SkillsError> {
    let typed = text::words(text, text::MAX_QUERY_WORDS);
    if typed.is_empty() {
        return Err(SkillsError::invalid(
            field,
            format!("{field} has no words to look for"),
        ));
    }
    let mut read = ReadWords {
        words: Vec::new(),
        corrections: Vec::new(),
        lexemes: BTreeMap::new(),
    };
    for (word, nearest, lexeme) in store::nearest_words(db, &typed).await? {
        let used = match nearest {
            Some(nearest) if nearest != word => {
                read.corrections.push(Correction {
                    from: word,
                    to: nearest.clone(),
                });
                nearest
            }
            _ => word,
        };
        if let Some(lexeme) = lexeme {
            read.lexemes.entry(lexeme).or_insert_with(|| used.clone());
        }
        read.words.push(used);
    }
    Ok(read)
}

pub struct SkillsService {
    pool: Pool,
    clock: Arc<dyn Clock>,
}

impl SkillsService {
    pub fn new(pool: Pool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }

    async fn resolve(db: &impl GenericClient, id: &str) -> Result<SkillRow, SkillsError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(SkillsError::missing("id"));
        }
        let found = match Uuid::parse_str(id) {
            Ok(uuid) => store::by_id(db, uuid).await?,
            Err(_) => store::by_name(db, id).await?,
        };
        found.ok_or(SkillsError::NotFound)
    }

    pub async fn list(&self, caller: &Identity, query: &ListQuery) -> Result<Page, SkillsError> {
        caller.require_user()?;
        let (sort_column, descending) = parse_sort(&query.sort)?;
        let all_tags = match query.tags_mode.trim() {
            "" | "any" => false,
            "all" => true,
            _ => {
                return Err(SkillsError::invalid(
                    "tags_mode",
                    "tags_mode must be any or all",
                ));
            }
        };
        let tags = catalogue::tags(&query.tags)?;
        let category = match query.category.trim() {
            "" => None,
            given => Some(catalogue::category(given)?),
        };
        let filter = store::ListFilter {
            category: category.as_deref(),
            tags: &tags,
            all_tags,
            sort_column,
            descending,
            limit: limit("limit", query.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?,
            offset: i64::from(query.offset),
        };
        let db = self.pool.get().await?;
        let (total_count, filter_count, skills) = store::list(&db, &filter).await?;
        Ok(Page {
            skills,
            total_count,
            filter_count,
        })
    }

    pub async fn get(&self, caller: &Identity, id: &str) -> Result<SkillRow, SkillsError> {
        caller.require_user()?;
        let db = self.pool.get().await?;
        Self::resolve(&db, id).await
    }

    /// Writes a skill's edges and words once its row is written.
    async fn link(
        db: &impl GenericClient,
        skill: &SkillRow,
        related: Option<&[String]>,
    ) -> Result<(), SkillsError> {
        if let Some(related) = related {
            let found = store::ids_of_names(db, related).await?;
            if let Some(unknown) = related
                .iter()
                .find(|name| !found.iter().any(|(known, _)| known == *name))
            {
                return Err(SkillsError::invalid(
                    "related",
                    format!("no skill is named {unknown:?}"),
                ));
            }
            let ids: Vec<Uuid> = found.into_iter().map(|(_, id)| id).collect();
            store::set_explicit(db, skill.id, &ids, EXPLICIT_WEIGHT).await?;
        }
        store::refresh_shared_tags(db, skill.id, MIN_SHARED_TAGS_JACCARD).await?;
        let words = text::lexicon([
            skill.name.as_str(),
            &skill.tags.join(" "),
            &skill.description,
            &skill.content,
        ]);
        store::add_words(db, &words).await
    }

    pub async fn create(
        &self,
        caller: &Identity,
        fields: SkillFields,
        related: &[String],
    ) -> Result<SkillRow, SkillsError> {
        caller.require_admin()?;
        let fields = SkillFields {
            name: catalogue::name(&fields.name)?,
            category: catalogue::category(&fields.category)?,
            description: catalogue::description(&fields.description)?,
            tags: catalogue::tags(&fields.tags)?,
            content: catalogue::content(&fields.content)?,
        };
        let related = catalogue::related(related)?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let skill = store::insert(&tx, Uuid::new_v4(), &fields, self.clock.now()).await?;
        Self::link(&tx, &skill, Some(&related)).await?;
        tx.commit().await?;
        Ok(skill)
    }

    pub async fn update(
        &self,
        caller: &Identity,
        id: &str,
        patch: SkillPatch,
    ) -> Result<SkillRow, SkillsError> {
        caller.require_admin()?;
        let related = patch
            .related
            .as_deref()
            .map(catalogue::related)
            .transpose()?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let current = Self::resolve(&tx, id).await?;
        let fields = SkillFields {
            name: match &patch.name {
                Some(name) => catalogue::name(name)?,
                None => current.name.clone(),
            },
            category: match &patch.category {
                Some(category) => catalogue::category(category)?,
                None => current.category.clone(),
            },
            description: match &patch.description {
                Some(description) => catalogue::description(description)?,
                None => current.description.clone(),
            },
            tags: match &patch.tags {
                Some(tags) => catalogue::tags(tags)?,
                None => current.tags.clone(),
            },
            content: match &patch.content {
                Some(content) => catalogue::content(content)?,
                None => current.content.clone(),
            },
        };
        let skill = store::update(&tx, current.id, &fields, self.clock.now())
            .await?
            .ok_or(SkillsError::NotFound)?;
        Self::link(&tx, &skill, related.as_deref()).await?;
        tx.commit().await?;
        Ok(skill)
    }

    pub async fn delete(&self, caller: &Identity, id: &str) -> Result<Uuid, SkillsError> {
        caller.require_admin()?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let skill = Self::resolve(&tx, id).await?;
        store::delete(&tx, skill.id).await?;
        tx.commit().await?;
        Ok(skill.id)
    }

    pub async fn search(
        &self,
        caller: &Identity,
        query: &str,
        limit_given: Option<u32>,
    ) -> Result<SearchAnswer, SkillsError> {
        caller.require_user()?;
        let query = bounded_text("query", query, MAX_QUERY_LEN)?;
        let limit = limit("limit", limit_given, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)?;
        let db = self.pool.get().await?;
        let read = read_words(&db, "query", &query).await?;
        let hits = store::search(
            &db,
            &text::any_of(&read.words),
            &read.words.join(" "),
            limit,
        )
        .await?;
        Ok(SearchAnswer {
            hits,
            corrections: read.corrections,
        })
    }

    pub async fn related(
        &self,
        caller: &Identity,
        id: &str,
        limit_given: Option<u32>,
    ) -> Result<Vec<Neighbour>, SkillsError> {
        caller.require_user()?;
        let limit = limit(
            "limit",
            limit_given,
            DEFAULT_RELATED_LIMIT,
            MAX_RELATED_LIMIT,
        )?;
        let db = self.pool.get().await?;
        let skill = Self::resolve(&db, id).await?;
        store::related(&db, skill.id, limit).await
    }

    /// The skills for `task`, explained, recorded in the caller's history (see
    /// [`crate::activation`]).
    pub async fn activate(
        &self,
        caller: &Identity,
        task: &str,
        limit_given: Option<u32>,
    ) -> Result<ActivationAnswer, SkillsError> {
        let user = caller.require_user()?;
        let task = bounded_text("task", task, MAX_TASK_LEN)?;
        let limit = limit(
            "limit",
            limit_given,
            DEFAULT_ACTIVATE_LIMIT,
            MAX_ACTIVATE_LIMIT,
        )?;
        let now = self.clock.now();
        let mut db = self.pool.get().await?;
        let read = read_words(&db, "task", &task).await?;
        let lexemes: Vec<String> = read.lexemes.keys().cloned().collect();
        let matched = store::matching(
            &db,
            &text::any_of(&read.words),
            &lexemes,
            ACTIVATION_CANDIDATES,
        )
        .await?;
        let seeds: Vec<Seed> = matched
            .iter()
            .map(|hit| Seed {
                id: hit.id,
                matched_tags: hit.matched_tags.len(),
                text_rank: hit.text_rank,
            })
            .collect();

        let mut graph = Graph::default();
        let mut known: BTreeSet<Uuid> = seeds.iter().map(|seed| seed.id).collect();
        let mut frontier: Vec<Uuid> = known.iter().copied().collect();
        for _ in 0..PARAMS.hops {
            if frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for (from, to, weight) in store::edges_touching(&db, &frontier).await? {
                graph.add_edge(from, to, weight);
                for node in [from, to] {
                    if known.insert(node) {
                        next.push(node);
                    }
                }
            }
            frontier = next;
        }
        let reached: Vec<Uuid> = known.into_iter().collect();
        let names: BTreeMap<Uuid, String> =
            store::names_of(&db, &reached).await?.into_iter().collect();
        let mut uses: BTreeMap<Uuid, Vec<chrono::DateTime<chrono::Utc>>> = BTreeMap::new();
        for (skill, at) in store::history(&db, user.id, &reached, now, HISTORY_LIMIT).await? {
            uses.entry(skill).or_default().push(at);
        }
        let base_levels: BTreeMap<Uuid, f64> = uses
            .iter()
            .map(|(skill, at)| (*skill, activation::base_level(at, now, PARAMS.decay)))
            .collect();
        let mut ranked = activation::rank(&seeds, &graph, &base_levels, &names, &PARAMS);
        ranked.truncate(usize::try_from(limit).unwrap_or(usize::MAX));

        let chosen: Vec<Uuid> = ranked.iter().map(|scored| scored.id).collect();
        let mut rows: BTreeMap<Uuid, SkillRow> = store::by_ids(&db, &chosen)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        if !chosen.is_empty() {
            // The history and the edge it grows are one fact: written together or not at all.
            let tx = db.transaction().await?;
            store::record_activations(&tx, user.id, &chosen, now).await?;
            if chosen.len() > 1 {
                store::grow_co_activation(&tx, &chosen, CO_ACTIVATION_STEP).await?;
            }
            tx.commit().await?;
        }
        let matched: BTreeMap<Uuid, &store::Matched> =
            matched.iter().map(|hit| (hit.id, hit)).collect();
        let skills = ranked
            .into_iter()
            .filter_map(|scored| {
                // A skill deleted since it was ranked is left out rather than shown half.
                let skill = rows.remove(&scored.id)?;
                let direct = matched.get(&scored.id);
                let mut matched_words: Vec<String> = direct
                    .map(|hit| {
                        hit.matched_lexemes
                            .iter()
                            .filter_map(|lexeme| read.lexemes.get(lexeme).cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                matched_words.sort();
                matched_words.dedup();
                let path = scored
                    .path
                    .iter()
                    .map(|id| names.get(id).cloned().unwrap_or_else(|| id.to_string()))
                    .collect();
                Some(Activated {
                    skill,
                    activation_score: scored.activation,
                    why: Why {
                        matched_tags: direct
                            .map(|hit| hit.matched_tags.clone())
                            .unwrap_or_default(),
                        matched_words,
                        base_level: scored.base_level,
                        path,
                        seed: scored.seed,
                        spread: scored.spread,
                    },
                })
            })
            .collect();
        Ok(ActivationAnswer {
            skills,
            corrections: read.corrections,
        })
    }

    /// Imports `SKILL.md` documents (path, text) in one transaction: each is created, updated or
    /// left unchanged by name; its `related` become explicit edges, its tags `shared_tags`
    /// edges. A document that does not parse, a name given twice or a `related` naming no skill
    /// refuses the whole import.
    pub async fn import(
        &self,
        documents: &[(String, String)],
    ) -> Result<ImportReport, SkillsError> {
        let mut docs: Vec<SkillDoc> = Vec::with_capacity(documents.len());
        for (path, text) in documents {
            let doc = catalogue::parse(text)
                .map_err(|err| SkillsError::invalid("document", format!("{path}: {err}")))?;
            if docs.iter().any(|seen| seen.fields.name == doc.fields.name) {
                return Err(SkillsError::invalid(
                    "document",
                    format!("{path}: the name {:?} is used twice", doc.fields.name),
                ));
            }
            docs.push(doc);
        }
        let now = self.clock.now();
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        store::lock_imports(&tx).await?;
        let mut report = ImportReport::default();
        let mut changed: Vec<(SkillRow, &SkillDoc)> = Vec::new();
        for doc in &docs {
            let name = doc.fields.name.clone();
            match store::by_name(&tx, &doc.fields.name).await? {
                None => {
                    let skill = store::insert(&tx, Uuid::new_v4(), &doc.fields, now).await?;
                    report.created.push(name);
                    changed.push((skill, doc));
                }
                Some(current) => {
                    let mut related = doc.related.clone();
                    related.sort();
                    let same = current.category == doc.fields.category
                        && current.description == doc.fields.description
                        && current.tags == doc.fields.tags
                        && current.content == doc.fields.content
                        && store::explicit_related(&tx, current.id).await? == related;
                    if same {
                        report.unchanged.push(name);
                    } else {
                        let skill = store::update(&tx, current.id, &doc.fields, now)
                            .await?
                            .ok_or(SkillsError::NotFound)?;
                        report.updated.push(name);
                        changed.push((skill, doc));
                    }
                }
            }
        }
        for (skill, doc) in &changed {
            Self::link(&tx, skill, Some(&doc.related))
                .await
                .map_err(|err| match err {
                    SkillsError::Api(api) => {
                        SkillsError::invalid("document", format!("{}: {}", skill.name, api.message))
                    }
                    other => other,
                })?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Imports the shipped catalogue when the catalogue is empty (a fresh installation).
    pub async fn seed_if_empty(&self) -> Result<Option<ImportReport>, SkillsError> {
        let db = self.pool.get().await?;
        if store::count(&db).await? > 0 {
            return Ok(None);
        }
        drop(db);
        let shipped: Vec<(String, String)> = catalogue::SHIPPED
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        self.import(&shipped).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_takes_only_listed_fields() {
        assert_eq!(parse_sort("").unwrap(), ("date_updated", true));
        assert_eq!(parse_sort("name").unwrap(), ("name", false));
        assert_eq!(parse_sort("-category").unwrap(), ("category", true));
        for bad in [
            "content",
            "name;drop table skills.skills",
            "--name",
            "-",
            "Name",
            "name desc",
        ] {
            let err = common::ApiError::from(parse_sort(bad).unwrap_err());
            assert_eq!(err.field.as_deref(), Some("sort"), "{bad}");
            assert_eq!(err.http_status_code(), 400);
        }
    }

    #[test]
    fn limits_default_and_refuse_zero_and_past_the_maximum() {
        assert_eq!(limit("limit", None, 50, 500).unwrap(), 50);
        assert_eq!(limit("limit", Some(500), 50, 500).unwrap(), 500);
        assert!(limit("limit", Some(0), 50, 500).is_err());
        assert!(limit("limit", Some(501), 50, 500).is_err());
    }
}
