//! The content taxonomy: tags classified along six concepts (`queue.taxonomy_mapping`), looked
//! up through a cache of each tag's concepts. An administrator busts the cache after changing the
//! mapping; the bust is sent to every replica through a Postgres notification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Pool;
use moka::future::Cache;

use crate::error::QueueError;
use crate::store;

/// Tags one classification may name.
pub const MAX_TAGS: usize = 100;
/// The longest tag looked up (a longer one is no tag of the mapping).
pub const MAX_TAG_LEN: usize = 100;

/// A tag as the mapping keeps it: lower case, words separated by one space (`Behind_The-Scenes`
/// is `behind the scenes`).
pub fn normalize(tag: &str) -> String {
    tag.trim()
        .trim_start_matches('#')
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A tag's concepts with the tag's weight in each.
pub type TagConcepts = Arc<Vec<(String, f32)>>;

/// Hits and misses since the process started, and the tags held now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub size: u64,
}

/// How strongly a set of tags speaks to one concept, and which tags did.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptScore {
    pub concept: String,
    /// 1 − Π(1 − weight) over the tags of the concept: one sure tag is enough, several unsure
    /// ones add up, and it never passes 1.
    pub score: f64,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classification {
    /// Best first.
    pub concepts: Vec<ConceptScore>,
    /// The tags (normalized) the mapping does not know.
    pub unmatched: Vec<String>,
}

pub struct Taxonomy {
    pool: Pool,
    /// Each tag's concepts with weights; a tag the mapping does not know is kept too (empty), so
    /// that asking for it again costs no query.
    cache: Cache<String, TagConcepts>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Taxonomy {
    pub fn new(pool: Pool, capacity: u64) -> Self {
        Self {
            pool,
            cache: Cache::new(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub async fn stats(&self) -> CacheStats {
        self.cache.run_pending_tasks().await;
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            size: self.cache.entry_count(),
        }
    }

    /// Drops every cached tag of this replica.
    pub async fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks().await;
    }

    /// Busts the cache of every replica: this one now, the others when the notification
    /// reaches them.
    pub async fn invalidate(&self) -> Result<(), QueueError> {
        self.clear().await;
        store::notify_taxonomy_changed(&self.pool.get().await?).await
    }

    async fn concepts_of(&self, tag: &str) -> Result<TagConcepts, QueueError> {
        if let Some(concepts) = self.cache.get(tag).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(concepts);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let concepts = Arc::new(store::tag_concepts(&self.pool.get().await?, tag).await?);
        self.cache
            .insert(tag.to_owned(), Arc::clone(&concepts))
            .await;
        Ok(concepts)
    }

    /// Classifies `tags` along the concepts; each distinct tag is looked up once.
    pub async fn classify(&self, tags: &[String]) -> Result<Classification, QueueError> {
        if tags.len() > MAX_TAGS {
            return Err(QueueError::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags at once"),
            ));
        }
        let mut distinct: Vec<String> = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = normalize(tag);
            if tag.is_empty() {
                return Err(QueueError::invalid("tags", "a tag is empty"));
            }
            if tag.chars().any(char::is_control) {
                return Err(QueueError::invalid(
                    "tags",
                    "a tag holds a control character",
                ));
            }
            if tag.len() > MAX_TAG_LEN {
                return Err(QueueError::invalid(
                    "tags",
                    format!("a tag is over {MAX_TAG_LEN} bytes"),
                ));
            }
            if !distinct.contains(&tag) {
                distinct.push(tag);
            }
        }
        let mut found = Vec::with_capacity(distinct.len());
        for tag in distinct {
            let concepts = self.concepts_of(&tag).await?;
            found.push((tag, concepts));
        }
        Ok(score(&found))
    }
}

/// Combines each tag's concepts into one score per concept.
pub fn score(found: &[(String, TagConcepts)]) -> Classification {
    let mut by_concept: BTreeMap<&str, (f64, Vec<String>)> = BTreeMap::new();
    let mut unmatched = Vec::new();
    for (tag, concepts) in found {
        if concepts.is_empty() {
            unmatched.push(tag.clone());
        }
        for (concept, weight) in concepts.iter() {
            let entry = by_concept.entry(concept).or_insert((1.0, Vec::new()));
            entry.0 *= 1.0 - f64::from(*weight);
            entry.1.push(tag.clone());
        }
    }
    let mut concepts: Vec<ConceptScore> = by_concept
        .into_iter()
        .map(|(concept, (missing, tags))| ConceptScore {
            concept: concept.to_owned(),
            score: ((1.0 - missing) * 1000.0).round() / 1000.0,
            tags,
        })
        .collect();
    concepts.sort_by(|a, b| b.score.total_cmp(&a.score));
    Classification {
        concepts,
        unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized_like_the_mapping() {
        assert_eq!(normalize("  #Behind_The-Scenes "), "behind the scenes");
        assert_eq!(normalize("Lingerie"), "lingerie");
        assert_eq!(normalize("q   and\ta"), "q and a");
        assert_eq!(normalize("_-_"), "");
    }

    #[test]
    fn scores_add_up_per_concept_and_never_pass_one() {
        let found = vec![
            (
                "lingerie".to_owned(),
                Arc::new(vec![("Intimacy Level".to_owned(), 0.8)]),
            ),
            (
                "boudoir".to_owned(),
                Arc::new(vec![
                    ("Intimacy Level".to_owned(), 0.5),
                    ("Production Quality".to_owned(), 0.25),
                ]),
            ),
            ("unknown".to_owned(), Arc::new(Vec::new())),
        ];
        let classified = score(&found);
        assert_eq!(classified.unmatched, ["unknown"]);
        assert_eq!(classified.concepts.len(), 2);
        assert_eq!(classified.concepts[0].concept, "Intimacy Level");
        // 1 − (0.2 × 0.5)
        assert!((classified.concepts[0].score - 0.9).abs() < 1e-9);
        assert_eq!(classified.concepts[0].tags, ["lingerie", "boudoir"]);
        assert!((classified.concepts[1].score - 0.25).abs() < 1e-9);
    }
}
