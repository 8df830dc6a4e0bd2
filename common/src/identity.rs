//! Who a call is made for. The gateway establishes it (JWT or shared secret) and passes it to the
//! services in gRPC metadata; a service believes it only from a caller holding the internal token
//! (see [`crate::grpc::InternalAuth`]).

use tonic::metadata::{MetadataMap, MetadataValue};
use uuid::Uuid;

use crate::error::ApiError;

pub const USER_ID: &str = "x-user-id";
pub const USER_ROLE: &str = "x-user-role";
pub const USER_TIER: &str = "x-user-tier";
pub const IMPERSONATED_BY: &str = "x-impersonated-by";
pub const REQUEST_ID: &str = "x-request-id";

/// Role name of administrators, as stored by svc-auth and carried in `x-user-role`.
pub const ADMINISTRATOR: &str = "administrator";
/// `x-user-role` of a server-to-server caller that proved the RBAC sync secret.
pub const SYSTEM_ROLE: &str = "system";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No one in particular: login, register, and other public entry points.
    Anonymous,
    /// A server-to-server caller that proved the shared webhook secret.
    System,
    User(UserIdentity),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    pub id: Uuid,
    /// Role name (`administrator`, `creator`, `viewer`), empty for a user without a role.
    pub role: String,
    pub tier: String,
    /// The administrator acting as this user, when the token came from an impersonation.
    pub impersonated_by: Option<Uuid>,
}

impl UserIdentity {
    pub fn is_admin(&self) -> bool {
        self.role == ADMINISTRATOR
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: Principal,
    pub request_id: String,
}

impl Identity {
    pub fn anonymous(request_id: impl Into<String>) -> Self {
        Self {
            principal: Principal::Anonymous,
            request_id: request_id.into(),
        }
    }

    pub fn system(request_id: impl Into<String>) -> Self {
        Self {
            principal: Principal::System,
            request_id: request_id.into(),
        }
    }

    pub fn user(user: UserIdentity, request_id: impl Into<String>) -> Self {
        Self {
            principal: Principal::User(user),
            request_id: request_id.into(),
        }
    }

    /// The calling user, or `UNAUTHENTICATED` when the call is not made for one.
    pub fn require_user(&self) -> Result<&UserIdentity, ApiError> {
        match &self.principal {
            Principal::User(user) => Ok(user),
            _ => Err(ApiError::unauthenticated(
                "token_missing",
                "this call needs a signed-in user",
            )),
        }
    }

    /// The calling user when an administrator acting as themselves, else `PERMISSION_DENIED`:
    /// an impersonation session never carries an administrator's power, whoever is impersonated.
    pub fn require_admin(&self) -> Result<&UserIdentity, ApiError> {
        let user = self.require_user()?;
        if user.impersonated_by.is_some() {
            Err(ApiError::forbidden(
                "an impersonation session cannot do administrator work",
            ))
        } else if user.is_admin() {
            Ok(user)
        } else {
            Err(ApiError::forbidden("administrators only"))
        }
    }

    pub fn write_to(&self, metadata: &mut MetadataMap) {
        insert(metadata, REQUEST_ID, &self.request_id);
        match &self.principal {
            Principal::Anonymous => {}
            Principal::System => insert(metadata, USER_ROLE, SYSTEM_ROLE),
            Principal::User(user) => {
                insert(metadata, USER_ID, &user.id.to_string());
                insert(metadata, USER_ROLE, &user.role);
                insert(metadata, USER_TIER, &user.tier);
                if let Some(admin) = user.impersonated_by {
                    insert(metadata, IMPERSONATED_BY, &admin.to_string());
                }
            }
        }
    }

    /// Reads the identity a trusted caller put in the metadata.
    pub fn read_from(metadata: &MetadataMap) -> Result<Self, ApiError> {
        let get = |key: &str| metadata.get(key).and_then(|value| value.to_str().ok());
        let parse_uuid = |key: &str, value: &str| {
            Uuid::parse_str(value)
                .map_err(|_| ApiError::invalid_field(key, format!("{key} is not a uuid")))
        };
        let request_id = get(REQUEST_ID).unwrap_or_default().to_owned();
        let principal = match (get(USER_ID), get(USER_ROLE)) {
            (Some(id), role) => Principal::User(UserIdentity {
                id: parse_uuid(USER_ID, id)?,
                role: role.unwrap_or_default().to_owned(),
                tier: get(USER_TIER).unwrap_or_default().to_owned(),
                impersonated_by: get(IMPERSONATED_BY)
                    .map(|admin| parse_uuid(IMPERSONATED_BY, admin))
                    .transpose()?,
            }),
            (None, Some(SYSTEM_ROLE)) => Principal::System,
            (None, _) => Principal::Anonymous,
        };
        Ok(Self {
            principal,
            request_id,
        })
    }
}

fn insert(metadata: &mut MetadataMap, key: &'static str, value: &str) {
    if let Ok(value) = MetadataValue::try_from(value) {
        metadata.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_metadata() {
        let identities = [
            Identity::anonymous("r1"),
            Identity::system("r2"),
            Identity::user(
                UserIdentity {
                    id: Uuid::new_v4(),
                    role: "creator".into(),
                    tier: "starter".into(),
                    impersonated_by: Some(Uuid::new_v4()),
                },
                "r3",
            ),
        ];
        for identity in identities {
            let mut metadata = MetadataMap::new();
            identity.write_to(&mut metadata);
            assert_eq!(Identity::read_from(&metadata).unwrap(), identity);
        }
    }

    #[test]
    fn only_administrators_pass_require_admin() {
        let user = |role: &str| {
            Identity::user(
                UserIdentity {
                    id: Uuid::new_v4(),
                    role: role.into(),
                    tier: "starter".into(),
                    impersonated_by: None,
                },
                "r",
            )
        };
        assert!(user(ADMINISTRATOR).require_admin().is_ok());
        assert!(user("creator").require_admin().is_err());
        assert!(Identity::system("r").require_user().is_err());
    }
}
