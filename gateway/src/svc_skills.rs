//! Routes owned by svc-skills: the agent skills catalogue. The gateway checks the shape of a
//! request (types, required fields, numbers); svc-skills is the authority on limits, sort
//! fields, slugs and who may write (administrators; the gateway checks that first, before the
//! body is read).

use actix_web::{delete, get, patch, post, web};
use common::ApiError;
use proto::skills::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::{Integer, NonBlank};
use crate::kit::{
    AdminOnly, Authenticated, Envelope, Errors, Input, JsonBody, PathId, Query, QueryParams, Reply,
    Routes, present,
};
use crate::session::{Admin, AuthenticatedUser};
use crate::state::AppState;
use crate::{error_set, rpc};

/// A skill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SkillView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "caption-hooks")]
    pub name: String,
    #[schema(example = "captions")]
    pub category: String,
    pub description: String,
    pub tags: Vec<String>,
    /// Markdown.
    pub content: String,
    /// RFC 3339.
    pub date_created: String,
    /// RFC 3339.
    pub date_updated: String,
}

impl From<pb::Skill> for SkillView {
    fn from(skill: pb::Skill) -> Self {
        Self {
            id: skill.id,
            name: skill.name,
            category: skill.category,
            description: skill.description,
            tags: skill.tags,
            content: skill.content,
            date_created: skill.date_created,
            date_updated: skill.date_updated,
        }
    }
}

fn skill(skill: Option<pb::Skill>) -> Result<SkillView, ApiError> {
    present(skill, "skill").map(SkillView::from)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Counts {
    /// Skills in the catalogue.
    pub total_count: u64,
    /// Skills passing the filters.
    pub filter_count: u64,
}

/// `{data: [skill], meta: {total_count, filter_count}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct SkillList {
    pub data: Vec<SkillView>,
    pub meta: Counts,
}

impl From<pb::SkillPage> for SkillList {
    fn from(page: pb::SkillPage) -> Self {
        Self {
            data: page.skills.into_iter().map(Into::into).collect(),
            meta: Counts {
                total_count: page.total_count,
                filter_count: page.filter_count,
            },
        }
    }
}

/// `{data: skill}`
#[derive(Debug, Serialize, ToSchema)]
pub struct OneSkill {
    pub data: SkillView,
}

impl From<pb::Skill> for OneSkill {
    fn from(skill: pb::Skill) -> Self {
        Self { data: skill.into() }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedId {
    #[schema(format = Uuid)]
    pub id: String,
}

/// `{data: {id}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedSkill {
    pub data: DeletedId,
}

impl From<pb::DeletedSkill> for DeletedSkill {
    fn from(deleted: pb::DeletedSkill) -> Self {
        Self {
            data: DeletedId { id: deleted.id },
        }
    }
}

/// A query word replaced by the nearest word of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Correction {
    #[schema(example = "captoin")]
    pub from: String,
    #[schema(example = "caption")]
    pub to: String,
}

fn corrections(list: Vec<pb::Correction>) -> Vec<Correction> {
    list.into_iter()
        .map(|c| Correction {
            from: c.from,
            to: c.to,
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    #[serde(flatten)]
    pub skill: SkillView,
    pub score: f64,
    /// Description and content around the matches, matches in `<mark>…</mark>`.
    pub snippet: String,
}

/// `{data: [hit], corrections}`
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub data: Vec<SearchHit>,
    pub corrections: Vec<Correction>,
}

impl TryFrom<pb::SearchResults> for SearchResults {
    type Error = ApiError;

    fn try_from(results: pb::SearchResults) -> Result<Self, ApiError> {
        Ok(Self {
            data: results
                .hits
                .into_iter()
                .map(|hit| {
                    Ok(SearchHit {
                        skill: skill(hit.skill)?,
                        score: hit.score,
                        snippet: hit.snippet,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
            corrections: corrections(results.corrections),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedSkill {
    #[serde(flatten)]
    pub skill: SkillView,
    /// The pair's edges summed, at most 1.
    pub weight: f64,
    /// `explicit`, `shared_tags`, `co_activation`.
    pub kinds: Vec<String>,
}

/// `{data: [related]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatedList {
    pub data: Vec<RelatedSkill>,
}

impl TryFrom<pb::RelatedList> for RelatedList {
    type Error = ApiError;

    fn try_from(list: pb::RelatedList) -> Result<Self, ApiError> {
        Ok(Self {
            data: list
                .related
                .into_iter()
                .map(|related| {
                    Ok(RelatedSkill {
                        skill: skill(related.skill)?,
                        weight: related.weight,
                        kinds: related.kinds,
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        })
    }
}

/// Why a skill was activated.
#[derive(Debug, Serialize, ToSchema)]
pub struct Why {
    pub matched_tags: Vec<String>,
    pub matched_words: Vec<String>,
    /// ln(1 + Σ t^-0.5) over the caller's own activations of the skill (hours ago).
    pub base_level: f64,
    /// Skill names from the directly matched skill to this one.
    pub path: Vec<String>,
    pub seed: f64,
    pub spread: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivatedSkill {
    #[serde(flatten)]
    pub skill: SkillView,
    pub activation_score: f64,
    pub why: Why,
}

/// `{data: [activated], threshold, corrections}`; `data` empty: no skill fits.
#[derive(Debug, Serialize, ToSchema)]
pub struct Activation {
    pub data: Vec<ActivatedSkill>,
    pub threshold: f64,
    pub corrections: Vec<Correction>,
}

impl TryFrom<pb::ActivationList> for Activation {
    type Error = ApiError;

    fn try_from(list: pb::ActivationList) -> Result<Self, ApiError> {
        Ok(Self {
            data: list
                .skills
                .into_iter()
                .map(|activated| {
                    let why = activated.why.unwrap_or_default();
                    Ok(ActivatedSkill {
                        skill: skill(activated.skill)?,
                        activation_score: activated.activation_score,
                        why: Why {
                            matched_tags: why.matched_tags,
                            matched_words: why.matched_words,
                            base_level: why.base_level,
                            path: why.path,
                            seed: why.seed,
                            spread: why.spread,
                        },
                    })
                })
                .collect::<Result<_, ApiError>>()?,
            threshold: list.threshold,
            corrections: corrections(list.corrections),
        })
    }
}

/// `GET /api/skills`' query.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SkillsQuery {
    /// Only this category.
    pub category: Option<String>,
    /// Comma-separated tags.
    #[param(value_type = Option<String>, example = "hooks,captions")]
    pub tags: Vec<String>,
    /// `any` (default) or `all` of `tags`.
    pub tags_mode: Option<String>,
    /// 1 to 500; default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Default 0.
    pub offset: Option<u32>,
    /// `name`, `category`, `date_created` or `date_updated`, `-` first for descending; default
    /// `-date_updated`.
    pub sort: Option<String>,
}

fn whole(field: &str, value: &str) -> Result<u32, ApiError> {
    value
        .parse::<u32>()
        .map_err(|_| ApiError::invalid_field(field, format!("{field} must be a whole number")))
}

/// Other parameters are ignored.
impl QueryParams for SkillsQuery {
    fn set(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        match key {
            "category" => self.category = Some(value.to_owned()),
            "tags" => {
                self.tags = value
                    .split(',')
                    .map(str::trim)
                    .filter(|tag| !tag.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "tags_mode" => self.tags_mode = Some(value.to_owned()),
            "limit" => self.limit = Some(whole("limit", value)?),
            "offset" => self.offset = Some(whole("offset", value)?),
            "sort" => self.sort = Some(value.to_owned()),
            _ => {}
        }
        Ok(())
    }
}

fn optional_limit(limit: Option<Integer>) -> Result<Option<u32>, ApiError> {
    limit
        .map(|Integer(n)| {
            u32::try_from(n)
                .map_err(|_| ApiError::invalid_field("limit", "limit must be a positive integer"))
        })
        .transpose()
}

#[derive(Deserialize, ToSchema)]
pub struct CreateSkillBody {
    #[schema(example = "caption-hooks")]
    pub name: NonBlank,
    #[schema(example = "captions")]
    pub category: NonBlank,
    pub description: NonBlank,
    #[serde(default)]
    pub tags: Vec<String>,
    pub content: NonBlank,
    /// Names of related skills (explicit edges).
    #[serde(default)]
    pub related: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateSkillBody {
    pub name: Option<String>,
    pub category: Option<String>,
    pub description: Option<String>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    pub content: Option<String>,
    /// Replaces the explicit edges.
    pub related: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
pub struct SearchBody {
    #[schema(example = "captoin hooks")]
    pub query: NonBlank,
    /// 1 to 100; default 20.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<Integer>,
}

#[derive(Deserialize, ToSchema)]
pub struct ActivateBody {
    #[schema(example = "write a first line for my post that stops the scroll")]
    pub task: NonBlank,
    /// 1 to 50; default 5.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 50)]
    pub limit: Option<Integer>,
}

error_set! {
    SkillNotFound {
        404 "not_found": "no skill with this uuid or name",
    }
}

error_set! {
    ListRules {
        400 "invalid_body": "`limit` outside 1..=500, `offset` not a whole number, `sort` not a listed field, `tags_mode` not any or all, or a category or tag that is not a slug (`field` names it)",
    }
}

error_set! {
    SkillRules {
        400 "invalid_body": "a field that is not a slug or too long, `related` naming no skill, or `limit` out of range (`field` names it)",
        409 "skill_name_taken": "another skill has this name",
    }
}

/// Skills, filtered, paged and sorted.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(SkillsQuery),
    responses((status = 200, description = "A page and the counts", body = Envelope<SkillList>),
              Errors<(Authenticated, ListRules)>))]
#[get("/api/skills")]
pub async fn list_skills(
    AuthenticatedUser(caller): AuthenticatedUser,
    Query(query): Query<SkillsQuery>,
    state: web::Data<AppState>,
) -> Reply<SkillList> {
    let request = pb::ListSkillsRequest {
        category: query.category.unwrap_or_default(),
        tags: query.tags,
        tags_mode: query.tags_mode.unwrap_or_default(),
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
        sort: query.sort.unwrap_or_default(),
    };
    state
        .skills
        .forward(&caller, request, rpc!(list_skills))
        .await
}

/// One skill, by uuid or by name.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "A uuid or a skill's name")),
    responses((status = 200, description = "The skill", body = Envelope<OneSkill>),
              Errors<(Authenticated, SkillNotFound)>))]
#[get("/api/skills/{id}")]
pub async fn get_skill(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(id): PathId,
    state: web::Data<AppState>,
) -> Reply<OneSkill> {
    state
        .skills
        .forward(&caller, pb::SkillRef { id }, rpc!(get_skill))
        .await
}

/// Adds a skill (administrators).
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = CreateSkillBody,
    responses((status = 200, description = "The new skill", body = Envelope<OneSkill>),
              Errors<(Authenticated, AdminOnly, JsonBody, SkillRules)>))]
#[post("/api/skills")]
pub async fn create_skill(
    Input(Admin(caller), body): Input<Admin, CreateSkillBody>,
    state: web::Data<AppState>,
) -> Reply<OneSkill> {
    let request = pb::SkillInput {
        name: body.name.into(),
        category: body.category.into(),
        description: body.description.into(),
        tags: body.tags,
        content: body.content.into(),
        related: body.related,
    };
    state
        .skills
        .forward(&caller, request, rpc!(create_skill))
        .await
}

/// Changes a skill (administrators); absent fields are kept.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "A uuid or a skill's name")),
    request_body = UpdateSkillBody,
    responses((status = 200, description = "The skill after the change", body = Envelope<OneSkill>),
              Errors<(Authenticated, AdminOnly, JsonBody, SkillRules, SkillNotFound)>))]
#[patch("/api/skills/{id}")]
pub async fn update_skill(
    Input(Admin(caller), body): Input<Admin, UpdateSkillBody>,
    PathId(id): PathId,
    state: web::Data<AppState>,
) -> Reply<OneSkill> {
    let request = pb::UpdateSkillRequest {
        id,
        name: body.name,
        category: body.category,
        description: body.description,
        set_tags: body.tags.is_some(),
        tags: body.tags.unwrap_or_default(),
        content: body.content,
        set_related: body.related.is_some(),
        related: body.related.unwrap_or_default(),
    };
    state
        .skills
        .forward(&caller, request, rpc!(update_skill))
        .await
}

/// Deletes a skill and its edges (administrators).
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "A uuid or a skill's name")),
    responses((status = 200, description = "The deleted skill's id", body = Envelope<DeletedSkill>),
              Errors<(Authenticated, AdminOnly, SkillNotFound)>))]
#[delete("/api/skills/{id}")]
pub async fn delete_skill(
    Admin(caller): Admin,
    PathId(id): PathId,
    state: web::Data<AppState>,
) -> Reply<DeletedSkill> {
    state
        .skills
        .forward(&caller, pb::SkillRef { id }, rpc!(delete_skill))
        .await
}

/// Full-text search weighted name > tags > description > content, tolerant of typos.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = SearchBody,
    responses((status = 200, description = "Hits, best first, with score and snippet", body = Envelope<SearchResults>),
              Errors<(Authenticated, JsonBody, SkillRules)>))]
#[post("/api/skills/search")]
pub async fn search_skills(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, SearchBody>,
    state: web::Data<AppState>,
) -> Reply<SearchResults> {
    let request = pb::SearchRequest {
        query: body.query.into(),
        limit: optional_limit(body.limit)?,
    };
    state
        .skills
        .forward(&caller, request, rpc!(search_skills))
        .await
}

/// The skill's neighbours by edge weight, with the edge kinds.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "A uuid or a skill's name")),
    responses((status = 200, description = "Neighbours, strongest first", body = Envelope<RelatedList>),
              Errors<(Authenticated, SkillNotFound)>))]
#[get("/api/skills/{id}/related")]
pub async fn related_skills(
    AuthenticatedUser(caller): AuthenticatedUser,
    PathId(id): PathId,
    state: web::Data<AppState>,
) -> Reply<RelatedList> {
    let request = pb::RelatedRequest { id, limit: None };
    state
        .skills
        .forward(&caller, request, rpc!(related_skills))
        .await
}

/// The skills for a task (ACT-R activation), each explained; recorded in the caller's history.
#[utoipa::path(tag = "skills",
    security(("bearer" = []), ("access_token" = []), ("session_cookie" = [])),
    request_body = ActivateBody,
    responses((status = 200, description = "Activated skills, strongest first; empty when none fits", body = Envelope<Activation>),
              Errors<(Authenticated, JsonBody, SkillRules)>))]
#[post("/api/skills/activate")]
pub async fn activate_skills(
    Input(AuthenticatedUser(caller), body): Input<AuthenticatedUser, ActivateBody>,
    state: web::Data<AppState>,
) -> Reply<Activation> {
    let request = pb::ActivateRequest {
        task: body.task.into(),
        limit: optional_limit(body.limit)?,
    };
    state.skills.forward(&caller, request, rpc!(activate)).await
}

pub fn routes(routes: &mut Routes) {
    routes
        .add(list_skills)
        .add(search_skills)
        .add(activate_skills)
        .add(create_skill)
        .add(related_skills)
        .add(get_skill)
        .add(update_skill)
        .add(delete_skill);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_list_query_is_read_by_hand() {
        assert_eq!(SkillsQuery::parse("").unwrap(), SkillsQuery::default());
        let query = SkillsQuery::parse(
            "category=captions&tags=hooks,%20captions,,&tags_mode=all&limit=500&offset=20&sort=-name&access_token=t",
        )
        .unwrap();
        assert_eq!(query.category.as_deref(), Some("captions"));
        assert_eq!(query.tags, ["hooks", "captions"]);
        assert_eq!(query.tags_mode.as_deref(), Some("all"));
        assert_eq!((query.limit, query.offset), (Some(500), Some(20)));
        assert_eq!(query.sort.as_deref(), Some("-name"));
        for (bad, field) in [
            ("limit=ten", "limit"),
            ("limit=-1", "limit"),
            ("offset=1.5", "offset"),
        ] {
            let err = SkillsQuery::parse(bad).unwrap_err();
            assert_eq!(err.http_status_code(), 400, "{bad}");
            assert_eq!(err.field.as_deref(), Some(field));
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
        match value {
            serde_json::Value::Object(object) => crate::body::parse_object(object),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn bad_bodies_name_their_field() {
        for (body, field) in [
            (json!({}), "query"),
            (json!({"query": "  "}), "query"),
            (json!({"query": "hooks", "limit": "5"}), "limit"),
            (json!({"query": 7}), "query"),
        ] {
            let err = parse::<SearchBody>(body).err().unwrap();
            assert_eq!(err.http_status_code(), 400);
            assert_eq!(err.field.as_deref(), Some(field));
        }
        let err = parse::<ActivateBody>(json!({"limit": 5})).err().unwrap();
        assert_eq!(err.field.as_deref(), Some("task"));
        let err = parse::<CreateSkillBody>(json!({"name": "x", "category": "c", "description": "d", "content": "c", "tags": "a,b"}))
            .err()
            .unwrap();
        assert_eq!(err.field.as_deref(), Some("tags"));
        let negative = optional_limit(Some(Integer(-3))).unwrap_err();
        assert_eq!(negative.field.as_deref(), Some("limit"));
    }

    #[test]
    fn an_activation_answer_keeps_its_explanation() {
        let skill = pb::Skill {
            id: "4f7c0c1e-0000-0000-0000-000000000001".into(),
            name: "caption-hooks".into(),
            ..Default::default()
        };
        let answer = Activation::try_from(pb::ActivationList {
            skills: vec![pb::ActivatedSkill {
                skill: Some(skill),
                activation_score: 0.9,
                why: Some(pb::Why {
                    matched_tags: vec!["hooks".into()],
                    path: vec!["caption-hooks".into()],
                    ..Default::default()
                }),
            }],
            threshold: 0.3,
            corrections: vec![],
        })
        .unwrap();
        let value = serde_json::to_value(Envelope::new(answer)).unwrap();
        assert_eq!(value["data"][0]["name"], "caption-hooks");
        assert_eq!(value["data"][0]["activation_score"], 0.9);
        assert_eq!(value["data"][0]["why"]["matched_tags"], json!(["hooks"]));
        assert_eq!(value["threshold"], 0.3);
        // A hit without its skill is svc-skills' bug: a 500, not a half answer.
        let broken = pb::SearchResults {
            hits: vec![pb::SearchHit {
                skill: None,
                score: 1.0,
                snippet: String::new(),
            }],
            corrections: vec![],
        };
        assert_eq!(
            SearchResults::try_from(broken)
                .unwrap_err()
                .http_status_code(),
            500
        );
    }
}
