//! The activation model, after ACT-R's retrieval: a skill's activation is its base level (how
//! recently and how often this user used it) plus what the task's context gives it (the task's
//! words and tags, directly and spread over the graph of related skills). Plain functions over
//! plain data, so the model is tested on a hand-built graph without a database.
//!
//! ```text
//! seed_i   = 0.3 · |task tags ∩ tags_i| + 6.0 · rank_i            (rank_i: ts_rank of the task)
//! spread_i = Σ_s∈top5 max over paths s → … → i of ≤ HOPS edges  Π_k (δ · w_k · fan(j_k)) · seed_s
//! fan(j)   = 1 / (1 + ln(degree_j))                     (ACT-R's fan effect, kept positive)
//! B_i      = ln(1 + Σ_j t_j^(-d))   t_j: hours since the j-th use (at least a minute), d = 0.5
//! A_i      = seed_i + spread_i + 0.2 · B_i     for skills with seed_i + spread_i > 0
//! returned when A_i ≥ τ = 0.3, strongest first (ties by name)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// What each of the task's tags that a skill carries adds (the original's +0.3).
    pub tag_weight: f64,
    /// Factor of the task's text rank against the skill: ts_rank of a few words is small
    /// (0.01 to 0.2), so it is scaled to weigh about as much as a matched tag.
    pub text_weight: f64,
    /// Factor of the base level.
    pub base_weight: f64,
    /// ACT-R's decay `d` of the base level.
    pub decay: f64,
    /// Edges followed from a directly matched skill.
    pub hops: usize,
    /// What is left of the activation after each edge (δ).
    pub hop_decay: f64,
    /// Below this nothing is returned (τ).
    pub threshold: f64,
    /// Only the strongest seeds spread: many faint matches would otherwise pile onto hubs.
    pub spreading_seeds: usize,
}

pub const PARAMS: Params = Params {
    tag_weight: 0.3,
    text_weight: 6.0,
    base_weight: 0.2,
    decay: 0.5,
    hops: 2,
    hop_decay: 0.5,
    threshold: 0.3,
    spreading_seeds: 5,
};

/// The shortest age the base level counts with: a use a second ago is not infinitely recent.
const MIN_AGE_HOURS: f64 = 1.0 / 60.0;

/// A skill the task's words reach directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    pub id: Uuid,
    pub matched_tags: usize,
    pub text_rank: f64,
}

pub fn seed_score(seed: &Seed, params: &Params) -> f64 {
    params.tag_weight * seed.matched_tags as f64 + params.text_weight * seed.text_rank
}

/// `ln(1 + Σ t^-d)` over the ages of the uses: 0 without history, higher for more and more
/// recent uses. Uses after `now` (a clock set back) are not counted.
pub fn base_level(uses: &[DateTime<Utc>], now: DateTime<Utc>, decay: f64) -> f64 {
    let strength: f64 = uses
        .iter()
        .filter(|at| **at <= now)
        .map(|at| {
            let hours = (now - *at).num_milliseconds() as f64 / 3_600_000.0;
            hours.max(MIN_AGE_HOURS).powf(-decay)
        })
        .sum();
    strength.ln_1p()
}

/// The related-skills graph around the seeds, undirected: the weight of a pair is its edges
/// summed, at most 1.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    neighbours: BTreeMap<Uuid, BTreeMap<Uuid, f64>>,
}

impl Graph {
    pub fn add_edge(&mut self, a: Uuid, b: Uuid, weight: f64) {
        if a == b || weight.is_nan() || weight <= 0.0 {
            return;
        }
        for (from, to) in [(a, b), (b, a)] {
            let pair = self
                .neighbours
                .entry(from)
                .or_default()
                .entry(to)
                .or_insert(0.0);
            *pair = (*pair + weight).min(1.0);
        }
    }

    pub fn degree(&self, node: Uuid) -> usize {
        self.neighbours.get(&node).map_or(0, BTreeMap::len)
    }

    fn neighbours(&self, node: Uuid) -> impl Iterator<Item = (Uuid, f64)> + '_ {
        self.neighbours
            .get(&node)
            .into_iter()
            .flat_map(|map| map.iter().map(|(id, weight)| (*id, *weight)))
    }
}

/// ACT-R's fan effect: a skill linked to many passes less to each.
pub fn fan(degree: usize) -> f64 {
    if degree <= 1 {
        1.0
    } else {
        1.0 / (1.0 + (degree as f64).ln())
    }
}

/// What a skill receives from the seeds over the graph, and the path of its largest share.
#[derive(Debug, Clone, PartialEq)]
pub struct Spread {
    pub amount: f64,
    /// From the seed to this skill, both included.
    pub path: Vec<Uuid>,
    best_share: f64,
}

/// Spreads each seed's activation over at most `params.hops` edges. From each seed, a skill
/// takes the largest share among the paths that reach it (no skill twice on a path), and the
/// shares of different seeds add up. A seed receives nothing from itself.
pub fn spread(
    seeds: &BTreeMap<Uuid, f64>,
    graph: &Graph,
    params: &Params,
) -> BTreeMap<Uuid, Spread> {
    let mut received: BTreeMap<Uuid, Spread> = BTreeMap::new();
    let mut strongest: Vec<(Uuid, f64)> = seeds.iter().map(|(id, a)| (*id, *a)).collect();
    strongest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    strongest.truncate(params.spreading_seeds);
    for (seed, activation) in strongest {
        if activation <= 0.0 {
            continue;
        }
        let mut best: BTreeMap<Uuid, (f64, Vec<Uuid>)> = BTreeMap::new();
        let mut frontier = vec![(activation, vec![seed])];
        for _ in 0..params.hops {
            let mut next = Vec::new();
            for (amount, path) in &frontier {
                let Some(&from) = path.last() else { continue };
                let passed = amount * params.hop_decay * fan(graph.degree(from));
                for (to, weight) in graph.neighbours(from) {
                    if path.contains(&to) {
                        continue;
                    }
                    let share = passed * weight;
                    let better = best.get(&to).is_none_or(|(known, _)| share > *known);
                    if better {
                        let mut longer = path.clone();
                        longer.push(to);
                        best.insert(to, (share, longer.clone()));
                        next.push((share, longer));
                    }
                }
            }
            frontier = next;
        }
        for (node, (share, path)) in best {
            let entry = received.entry(node).or_insert_with(|| Spread {
                amount: 0.0,
                path: Vec::new(),
                best_share: 0.0,
            });
            entry.amount += share;
            if share > entry.best_share {
                entry.best_share = share;
                entry.path = path;
            }
        }
    }
    received
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub id: Uuid,
    pub seed: f64,
    pub spread: f64,
    pub base_level: f64,
    pub activation: f64,
    /// Skill ids from the seed that reached it to it; just itself when the seed is the larger.
    pub path: Vec<Uuid>,
}

/// Combines seeds, spread and base levels into the skills above the threshold, strongest first;
/// ties go to the name that sorts first, so the order is the same for the same history.
pub fn rank(
    seeds: &[Seed],
    graph: &Graph,
    base_levels: &BTreeMap<Uuid, f64>,
    names: &BTreeMap<Uuid, String>,
    params: &Params,
) -> Vec<Scored> {
    let seed_scores: BTreeMap<Uuid, f64> = seeds
        .iter()
        .map(|seed| (seed.id, seed_score(seed, params)))
        .collect();
    let spread = spread(&seed_scores, graph, params);
    let reached: BTreeSet<Uuid> = seed_scores.keys().chain(spread.keys()).copied().collect();
    let mut scored: Vec<Scored> = reached
        .into_iter()
        .filter_map(|id| {
            let seed = seed_scores.get(&id).copied().unwrap_or(0.0);
            let received = spread.get(&id);
            let spread_amount = received.map_or(0.0, |spread| spread.amount);
            if seed + spread_amount <= 0.0 {
                return None;
            }
            let base_level = base_levels.get(&id).copied().unwrap_or(0.0);
            let activation = seed + spread_amount + params.base_weight * base_level;
            let path = match received {
                Some(spread) if spread.best_share > seed => spread.path.clone(),
                _ => vec![id],
            };
            Some(Scored {
                id,
                seed,
                spread: spread_amount,
                base_level,
                activation,
                path,
            })
        })
        .filter(|scored| scored.activation >= params.threshold)
        .collect();
    let name = |id: &Uuid| names.get(id).map_or("", String::as_str);
    scored.sort_by(|a, b| {
        b.activation
            .total_cmp(&a.activation)
            .then_with(|| name(&a.id).cmp(name(&b.id)))
            .then_with(|| a.id.cmp(&b.id))
    });
    scored
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn names(count: u128) -> BTreeMap<Uuid, String> {
        (1..=count).map(|n| (id(n), format!("skill-{n}"))).collect()
    }

    fn seed(n: u128, tags: usize, rank: f64) -> Seed {
        Seed {
            id: id(n),
            matched_tags: tags,
            text_rank: rank,
        }
    }

    #[test]
    fn seeds_count_each_matched_tag_as_the_original_did_plus_the_text_rank() {
        assert!((seed_score(&seed(1, 2, 0.15), &PARAMS) - 1.5).abs() < 1e-12);
        assert_eq!(seed_score(&seed(1, 0, 0.0), &PARAMS), 0.0);
    }

    #[test]
    fn the_base_level_grows_with_recency_and_frequency() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let hours_ago = |h: i64| now - chrono::TimeDelta::hours(h);
        assert_eq!(base_level(&[], now, 0.5), 0.0);
        let once_recent = base_level(&[hours_ago(1)], now, 0.5);
        let once_old = base_level(&[hours_ago(100)], now, 0.5);
        let thrice_old = base_level(&[hours_ago(100), hours_ago(101), hours_ago(102)], now, 0.5);
        assert!((once_recent - 2f64.ln()).abs() < 1e-9);
        assert!(once_recent > once_old);
        assert!(thrice_old > once_old);
        // A use "in the future" (the clock set back) counts for nothing.
        assert_eq!(
            base_level(&[now + chrono::TimeDelta::hours(1)], now, 0.5),
            0.0
        );
        // A use this very second is as strong as one a minute ago, not infinite.
        assert_eq!(
            base_level(&[now], now, 0.5),
            base_level(&[hours_ago(0)], now, 0.5)
        );
        assert!(base_level(&[now], now, 0.5).is_finite());
    }

    /// 1 — 2 — 3, and 4 linked to 1 and to five others (a hub).
    fn small_graph() -> Graph {
        let mut graph = Graph::default();
        graph.add_edge(id(1), id(2), 1.0);
        graph.add_edge(id(2), id(3), 0.5);
        graph.add_edge(id(4), id(1), 1.0);
        for n in 10..15 {
            graph.add_edge(id(4), id(n), 1.0);
        }
        graph
    }

    #[test]
    fn spread_decays_per_hop_stops_after_two_and_is_weaker_through_a_hub() {
        let graph = small_graph();
        let seeds = BTreeMap::from([(id(1), 1.0)]);
        let got = spread(&seeds, &graph, &PARAMS);
        // 1 has two neighbours (2 and 4): fan = 1 / (1 + ln 2).
        let fan1 = 1.0 / (1.0 + 2f64.ln());
        let to2 = 0.5 * fan1;
        assert!((got[&id(2)].amount - to2).abs() < 1e-12);
        assert_eq!(got[&id(2)].path, vec![id(1), id(2)]);
        // 2 has two neighbours (1 and 3); the edge to 3 weighs 0.5.
        let to3 = to2 * 0.5 * fan1 * 0.5;
        assert!((got[&id(3)].amount - to3).abs() < 1e-12);
        assert_eq!(got[&id(3)].path, vec![id(1), id(2), id(3)]);
        // Through the hub 4 (six neighbours) each of its others gets less than 3 does via 2,
        // though their edges weigh twice as much.
        let via_hub = got[&id(10)].amount;
        assert!((via_hub - 0.5 * fan1 * 0.5 * fan(6)).abs() < 1e-12);
        assert!(via_hub < 0.5 * fan1 * 0.5 * fan1);
        // Never back to the seed, never beyond two hops.
        assert!(!got.contains_key(&id(1)));
        let mut chain = Graph::default();
        chain.add_edge(id(1), id(2), 1.0);
        chain.add_edge(id(2), id(3), 1.0);
        chain.add_edge(id(3), id(4), 1.0);
        let far = spread(&seeds, &chain, &PARAMS);
        assert!(far.contains_key(&id(3)));
        assert!(!far.contains_key(&id(4)));
    }

    #[test]
    fn activation_orders_by_seed_then_spread_and_history_breaks_a_tie() {
        let graph = small_graph();
        let names = names(20);
        // 1 and 3 match equally; 2 matches nothing itself but sits between them.
        let seeds = [seed(1, 2, 0.2), seed(3, 2, 0.2)];
        let none = BTreeMap::new();
        let ranked = rank(&seeds, &graph, &none, &names, &PARAMS);
        let order: Vec<Uuid> = ranked.iter().map(|scored| scored.id).collect();
        // 1 gets more back from 3 than 3 from 1 (3's one link has no fan, 1's two have), and 2,
        // reached from both, comes after the direct matches.
        assert_eq!(order[..3], [id(1), id(3), id(2)]);
        assert_eq!(ranked[2].path, vec![id(1), id(2)]);
        assert_eq!(ranked[2].seed, 0.0);
        assert_eq!(ranked[0].path, vec![id(1)]);
        // The same task with a history of 3: 3 comes first, by its base level.
        let history = BTreeMap::from([(id(3), 1.0)]);
        let ranked = rank(&seeds, &graph, &history, &names, &PARAMS);
        assert_eq!(ranked[0].id, id(3));
        let top = &ranked[0];
        assert!((top.activation - (top.seed + top.spread + 0.2 * 1.0)).abs() < 1e-12);
        // Deterministic: the same inputs give the same answer.
        assert_eq!(ranked, rank(&seeds, &graph, &history, &names, &PARAMS));
    }

    #[test]
    fn below_the_threshold_nothing_fits_and_history_alone_activates_nothing() {
        let graph = small_graph();
        let names = names(20);
        // A faint word match only: below τ.
        let faint = [seed(3, 0, 0.02)];
        assert!(rank(&faint, &graph, &BTreeMap::new(), &names, &PARAMS).is_empty());
        // A strong history without any match in the task: still nothing.
        let history = BTreeMap::from([(id(5), 5.0)]);
        assert!(rank(&[], &graph, &history, &names, &PARAMS).is_empty());
        // One matched tag is enough.
        let tagged = [seed(3, 1, 0.0)];
        assert_eq!(
            rank(&tagged, &graph, &BTreeMap::new(), &names, &PARAMS)[0].id,
            id(3)
        );
    }
}
