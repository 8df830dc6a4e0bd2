//! `genie.skills.v1.Skills` over gRPC: translates messages to and from [`SkillsService`] calls.

use std::sync::Arc;

use common::grpc::identity;
use proto::skills::v1 as pb;
use tonic::{Request, Response, Status};

use crate::service::{self, ListQuery, SkillPatch, SkillsService};
use crate::store::{SkillFields, SkillRow};

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<SkillRow> for pb::Skill {
    fn from(skill: SkillRow) -> Self {
        Self {
            id: skill.id.to_string(),
            name: skill.name,
            category: skill.category,
            description: skill.description,
            tags: skill.tags,
            content: skill.content,
            date_created: rfc3339(skill.date_created),
            date_updated: rfc3339(skill.date_updated),
        }
    }
}

fn corrections(corrections: Vec<service::Correction>) -> Vec<pb::Correction> {
    corrections
        .into_iter()
        .map(|correction| pb::Correction {
            from: correction.from,
            to: correction.to,
        })
        .collect()
}

#[derive(Clone)]
pub struct SkillsGrpc {
    service: Arc<SkillsService>,
}

impl SkillsGrpc {
    pub fn new(service: Arc<SkillsService>) -> Self {
        Self { service }
    }
}

#[tonic::async_trait]
impl pb::skills_server::Skills for SkillsGrpc {
    async fn list_skills(
        &self,
        request: Request<pb::ListSkillsRequest>,
    ) -> Result<Response<pb::SkillPage>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let query = ListQuery {
            category: body.category,
            tags: body.tags,
            tags_mode: body.tags_mode,
            limit: body.limit,
            offset: body.offset,
            sort: body.sort,
        };
        let page = self.service.list(&caller, &query).await?;
        Ok(Response::new(pb::SkillPage {
            skills: page.skills.into_iter().map(Into::into).collect(),
            total_count: u64::try_from(page.total_count).unwrap_or_default(),
            filter_count: u64::try_from(page.filter_count).unwrap_or_default(),
        }))
    }

    async fn get_skill(
        &self,
        request: Request<pb::SkillRef>,
    ) -> Result<Response<pb::Skill>, Status> {
        let caller = identity(&request)?;
        let skill = self.service.get(&caller, &request.into_inner().id).await?;
        Ok(Response::new(skill.into()))
    }

    async fn create_skill(
        &self,
        request: Request<pb::SkillInput>,
    ) -> Result<Response<pb::Skill>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let fields = SkillFields {
            name: body.name,
            category: body.category,
            description: body.description,
            tags: body.tags,
            content: body.content,
        };
        let skill = self.service.create(&caller, fields, &body.related).await?;
        Ok(Response::new(skill.into()))
    }

    async fn update_skill(
        &self,
        request: Request<pb::UpdateSkillRequest>,
    ) -> Result<Response<pb::Skill>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let patch = SkillPatch {
            name: body.name,
            category: body.category,
            description: body.description,
            tags: body.set_tags.then_some(body.tags),
            content: body.content,
            related: body.set_related.then_some(body.related),
        };
        let skill = self.service.update(&caller, &body.id, patch).await?;
        Ok(Response::new(skill.into()))
    }

    async fn delete_skill(
        &self,
        request: Request<pb::SkillRef>,
    ) -> Result<Response<pb::DeletedSkill>, Status> {
        let caller = identity(&request)?;
        let id = self
            .service
            .delete(&caller, &request.into_inner().id)
            .await?;
        Ok(Response::new(pb::DeletedSkill { id: id.to_string() }))
    }

    async fn search_skills(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResults>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let answer = self
            .service
            .search(&caller, &body.query, body.limit)
            .await?;
        Ok(Response::new(pb::SearchResults {
            hits: answer
                .hits
                .into_iter()
                .map(|hit| pb::SearchHit {
                    skill: Some(hit.skill.into()),
                    score: hit.score,
                    snippet: hit.snippet,
                })
                .collect(),
            corrections: corrections(answer.corrections),
        }))
    }

    async fn related_skills(
        &self,
        request: Request<pb::RelatedRequest>,
    ) -> Result<Response<pb::RelatedList>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let related = self.service.related(&caller, &body.id, body.limit).await?;
        Ok(Response::new(pb::RelatedList {
            related: related
                .into_iter()
                .map(|neighbour| pb::RelatedSkill {
                    skill: Some(neighbour.skill.into()),
                    weight: neighbour.weight,
                    kinds: neighbour.kinds,
                })
                .collect(),
        }))
    }

    async fn activate(
        &self,
        request: Request<pb::ActivateRequest>,
    ) -> Result<Response<pb::ActivationList>, Status> {
        let caller = identity(&request)?;
        let body = request.into_inner();
        let answer = self
            .service
            .activate(&caller, &body.task, body.limit)
            .await?;
        Ok(Response::new(pb::ActivationList {
            skills: answer
                .skills
                .into_iter()
                .map(|activated| pb::ActivatedSkill {
                    skill: Some(activated.skill.into()),
                    activation_score: activated.activation_score,
                    why: Some(pb::Why {
                        matched_tags: activated.why.matched_tags,
                        matched_words: activated.why.matched_words,
                        base_level: activated.why.base_level,
                        path: activated.why.path,
                        seed: activated.why.seed,
                        spread: activated.why.spread,
                    }),
                })
                .collect(),
            threshold: crate::activation::PARAMS.threshold,
            corrections: corrections(answer.corrections),
        }))
    }
}
