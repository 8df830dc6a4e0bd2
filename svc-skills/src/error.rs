use common::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum SkillsError {
    #[error("skill not found")]
    NotFound,
    #[error("a skill named {0:?} exists already")]
    NameTaken(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] common::db::DbError),
}

common::service_error!(SkillsError);

impl From<SkillsError> for ApiError {
    fn from(err: SkillsError) -> Self {
        let message = err.to_string();
        match err {
            SkillsError::NotFound => ApiError::not_found("skill"),
            SkillsError::NameTaken(_) => {
                ApiError::conflict("skill_name_taken", message).with_field("name")
            }
            SkillsError::Api(err) => err,
            SkillsError::Db(err) => err.into(),
        }
    }
}
