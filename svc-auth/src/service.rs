//! What svc-auth does, as plain async methods over the database. The gRPC layer (`grpc.rs`)
//! only translates messages; these methods are the authority on every rule.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::clock::Clock;
use common::identity::{Identity, Principal};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::config::{Config, Mode};
use crate::directus::DirectusClient;
use crate::domain::{self, OnboardingState};
use crate::error::AuthError;
use crate::password::Hasher;
use crate::store::{self, User};
use crate::tokens::{self, AccessClaims, Signer};

pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires: Duration,
}

pub struct Onboarding {
    pub user_id: Uuid,
    pub state: String,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for Onboarding {
    fn from(user: User) -> Self {
        Self {
            user_id: user.id,
            state: user.onboarding_state,
            updated_at: user.onboarding_updated_at,
        }
    }
}

pub struct InviteCreated {
    pub code: String,
    pub expires_at: DateTime<Utc>,
    pub email: Option<String>,
}

pub struct Impersonation {
    pub access_token: String,
    pub expires: Duration,
    pub user: User,
}

struct Directus {
    client: DirectusClient,
    mirror_ttl: Duration,
}

pub struct AuthService {
    pool: Pool,
    /// Set in directus mode: Directus issues tokens and owns the users.
    directus: Option<Directus>,
    signer: Signer,
    access_ttl: Duration,
    refresh_ttl: Duration,
    impersonation_ttl: Duration,
    login_floor: Duration,
    avatar_max_bytes: usize,
    hasher: Hasher,
    /// What every expiry and token lifetime is measured from.
    clock: Arc<dyn Clock>,
}

fn parse_user_id(field: &str, value: &str) -> Result<Uuid, AuthError> {
    if value.trim().is_empty() {
        return Err(AuthError::missing(field));
    }
    Uuid::parse_str(value.trim())
        .map_err(|_| AuthError::invalid(field, format!("{field} must be a uuid")))
}

impl AuthService {
    pub fn new(config: &Config, pool: Pool, clock: Arc<dyn Clock>) -> Result<Self, AuthError> {
        let directus = match &config.mode {
            Mode::Embedded => None,
            Mode::Directus(directus) => Some(Directus {
                client: DirectusClient::new(
                    &directus.url,
                    directus.admin_token.clone(),
                    directus.timeout,
                )?,
                mirror_ttl: directus.mirror_ttl,
            }),
        };
        Ok(Self {
            pool,
            directus,
            signer: Signer::new(config.directus_secret.expose()),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            impersonation_ttl: config.impersonation_ttl,
            login_floor: config.login_floor,
            avatar_max_bytes: config.avatar_max_bytes,
            hasher: Hasher::new(config.hash_concurrency, config.hash_queue)?,
            clock,
        })
    }

    /// The time `lifetime` from now on the service's clock; a lifetime too long for a date (a
    /// misconfigured TTL) is an error, not an overflow.
    fn after(&self, lifetime: Duration) -> Result<DateTime<Utc>, AuthError> {
        TimeDelta::from_std(lifetime)
            .ok()
            .and_then(|lifetime| self.clock.now().checked_add_signed(lifetime))
            .ok_or_else(|| AuthError::Token(format!("a lifetime of {lifetime:?} is out of range")))
    }

    pub fn is_directus_mode(&self) -> bool {
        self.directus.is_some()
    }

    /// In directus mode, brings the local mirror of the user up to date when it is older than the
    /// mirror TTL. If Directus cannot be reached, a stale mirror is used rather than locking
    /// everyone out; without one the call fails.
    async fn mirror(&self, id: Uuid) -> Result<(), AuthError> {
        let Some(directus) = &self.directus else {
            return Ok(());
        };
        let db = self.pool.get().await?;
        let now = self.clock.now();
        if store::mirror_is_fresh(&db, id, directus.mirror_ttl, now).await? {
            return Ok(());
        }
        match directus.client.user(id).await {
            Ok(Some(user)) => store::upsert_mirror(&db, &user, now).await,
            Ok(None) if store::user_exists(&db, id).await? => {
                store::archive_mirror(&db, id, now).await
            }
            Ok(None) => Ok(()),
            Err(err) if store::user_exists(&db, id).await? => {
                tracing::warn!(user = %id, error = %err, "using a stale mirror: Directus unreachable");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn access_token(
        &self,
        user: &User,
        ttl: Duration,
        impersonated_by: Option<Uuid>,
    ) -> Result<String, AuthError> {
        let now = self.clock.now().timestamp();
        self.signer.sign(&AccessClaims {
            id: user.id,
            role: user.role_id,
            app_access: user.app_access,
            admin_access: user.admin_access,
            impersonated_by,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            iss: tokens::ISSUER,
        })
    }

    async fn issue_tokens(
        &self,
        db: &impl deadpool_postgres::GenericClient,
        user: &User,
    ) -> Result<Tokens, AuthError> {
        let refresh_token = tokens::new_refresh_token()?;
        let refresh_expires = self.after(self.refresh_ttl)?;
        store::insert_refresh_session(
            db,
            &tokens::digest(&refresh_token),
            user.id,
            refresh_expires,
        )
        .await?;
        Ok(Tokens {
            access_token: self.access_token(user, self.access_ttl, None)?,
            refresh_token,
            expires: self.access_ttl,
        })
    }

    /// Right or wrong, known email or not, the answer takes at least the login floor.
    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        if email.trim().is_empty() {
            return Err(AuthError::missing("email"));
        }
        if password.is_empty() {
            return Err(AuthError::missing("password"));
        }
        let deadline = tokio::time::Instant::now() + self.login_floor;
        let outcome = match &self.directus {
            Some(directus) => directus.client.login(email.trim(), password).await,
            None => self.check_credentials(email.trim(), password).await,
        };
        tokio::time::sleep_until(deadline).await;
        outcome
    }

    async fn check_credentials(&self, email: &str, password: &str) -> Result<Tokens, AuthError> {
        if password.len() > domain::PASSWORD_MAX_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        // The connection goes back to the pool while the password is hashed: a hash takes far
        // longer than the query, and a flood of logins must not hold every connection.
        let found = store::user_by_email(&self.pool.get().await?, email).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let matches = self.hasher.verify(password.to_owned(), hash).await?;
        match user {
            Some(user) if matches && user.status == "active" => {
                let db = self.pool.get().await?;
                store::touch_last_access(&db, user.id).await?;
                self.issue_tokens(&db, &user).await
            }
            _ => Err(AuthError::InvalidCredentials),
        }
    }

    /// Trades a refresh token for a new pair; the one presented is spent whatever happens next.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        if refresh_token.is_empty() {
            return Err(AuthError::missing("refresh_token"));
        }
        if let Some(directus) = &self.directus {
            return directus.client.refresh(refresh_token).await;
        }
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let taken =
            store::take_refresh_session(&tx, &tokens::digest(refresh_token), self.clock.now())
                .await?;
        let user = match taken {
            Some(user_id) => store::user_by_id(&tx, user_id)
                .await?
                .filter(|user| user.status == "active"),
            None => None,
        };
        let Some(user) = user else {
            // Refused (expired, or the user is not active): the deletion is committed all the
            // same, so the token cannot be tried again, nor work once the user is reactivated.
            tx.commit().await?;
            return Err(AuthError::InvalidCredentials);
        };
        let tokens = self.issue_tokens(&tx, &user).await?;
        tx.commit().await?;
        Ok(tokens)
    }

    /// Ends the session of this refresh token. An unknown token is already logged out.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        if refresh_token.is_empty() {
            return Err(AuthError::missing("refresh_token"));
        }
        if let Some(directus) = &self.directus {
            return directus.client.logout(refresh_token).await;
        }
        let db = self.pool.get().await?;
        store::take_refresh_session(&db, &tokens::digest(refresh_token), self.clock.now()).await?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<User, AuthError> {
        self.mirror(id).await?;
        let db = self.pool.get().await?;
        store::user_by_id(&db, id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    pub async fn resolve(&self, user_id: &str) -> Result<store::Resolved, AuthError> {
        let id = parse_user_id("user_id", user_id)?;
        self.mirror(id).await?;
        let db = self.pool.get().await?;
        store::resolve(&db, id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    pub async fn create_invite(
        &self,
        identity: &Identity,
        email: Option<&str>,
        hours: Option<u32>,
    ) -> Result<InviteCreated, AuthError> {
        let admin = identity.require_admin()?;
        let email = email
            .filter(|email| !email.trim().is_empty())
            .map(|email| domain::normalize_email("email", email))
            .transpose()?;
        let hours = domain::check_invite_hours(hours)?;
        self.insert_invite(admin.id, email, hours).await
    }

    /// For the operator's CLI, which acts as the given administrator.
    pub async fn insert_invite(
        &self,
        created_by: Uuid,
        email: Option<String>,
        hours: u32,
    ) -> Result<InviteCreated, AuthError> {
        let code = tokens::new_invite_code()?;
        let db = self.pool.get().await?;
        let expires_at = store::insert_invite(
            &db,
            &tokens::digest(&code),
            email.as_deref(),
            created_by,
            self.after(Duration::from_secs(u64::from(hours) * 3600))?,
        )
        .await?;
        Ok(InviteCreated {
            code,
            expires_at,
            email,
        })
    }

    pub async fn register(
        &self,
        email: &str,
        password: &str,
        invite_code: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<User, AuthError> {
        let email = domain::normalize_email("email", email)?;
        domain::check_new_password(password)?;
        if invite_code.trim().is_empty() {
            return Err(AuthError::missing("invite_code"));
        }
        let first_name = domain::normalize_name("first_name", first_name)?;
        let last_name = domain::normalize_name("last_name", last_name)?;
        if let Some(directus) = &self.directus {
            return self
                .register_in_directus(
                    directus,
                    &email,
                    password,
                    invite_code,
                    first_name.as_deref(),
                    last_name.as_deref(),
                )
                .await;
        }
        let password_hash = self.hasher.hash(password.to_owned()).await?;

        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let invite = store::redeem_invite(
            &tx,
            &tokens::digest(invite_code.trim()),
            &email,
            self.clock.now(),
        )
        .await?
        .ok_or(AuthError::InvalidInvite)?;
        let new_user = store::NewUser {
            email: &email,
            password_hash: &password_hash,
            first_name: first_name.as_deref(),
            last_name: last_name.as_deref(),
            role: domain::NEW_USER_ROLE,
            onboarding_state: OnboardingState::ExtensionInstall.as_str(),
            pricing_tier: domain::NEW_USER_TIER,
        };
        // Dropping the transaction on error rolls back, so a taken email leaves the invite unused.
        let user_id = store::insert_user(&tx, &new_user)
            .await?
            .ok_or(AuthError::EmailTaken)?;
        store::set_invite_user(&tx, invite, user_id).await?;
        let user = store::user_by_id(&tx, user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user is created in Directus, then mirrored here, while the invite stays locked in
    /// this transaction: if Directus refuses, the invite is left unused.
    async fn register_in_directus(
        &self,
        directus: &Directus,
        email: &str,
        password: &str,
        invite_code: &str,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<User, AuthError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let invite = store::redeem_invite(
            &tx,
            &tokens::digest(invite_code.trim()),
            email,
            self.clock.now(),
        )
        .await?
        .ok_or(AuthError::InvalidInvite)?;
        let role = directus
            .client
            .role_named(domain::NEW_USER_ROLE)
            .await?
            .ok_or_else(|| {
                AuthError::Directus(format!(
                    "Directus has no role named {}",
                    domain::NEW_USER_ROLE
                ))
            })?;
        let created = directus
            .client
            .create_user(email, password, role.id, first_name, last_name)
            .await?;
        store::upsert_mirror(&tx, &created, self.clock.now()).await?;
        store::set_invite_user(&tx, invite, created.id).await?;
        let user = store::user_by_id(&tx, created.id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn onboarding(&self, identity: &Identity) -> Result<Onboarding, AuthError> {
        let user = self.user(identity.require_user()?.id).await?;
        Ok(user.into())
    }

    pub async fn set_onboarding(
        &self,
        identity: &Identity,
        state: &str,
        user_id: Option<&str>,
    ) -> Result<Onboarding, AuthError> {
        let caller = identity.require_user()?;
        if state.trim().is_empty() {
            return Err(AuthError::missing("state"));
        }
        let to: OnboardingState = state.trim().parse()?;
        let target = match user_id.filter(|id| !id.trim().is_empty()) {
            Some(id) => parse_user_id("user_id", id)?,
            None => caller.id,
        };
        if target != caller.id && !caller.is_admin() {
            // Another user's onboarding is none of a non-administrator's business, not even its existence.
            return Err(AuthError::NotFound("user"));
        }
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let from: OnboardingState = store::lock_onboarding(&tx, target)
            .await?
            .ok_or(AuthError::NotFound("user"))?
            .parse()?;
        from.check_move(to, caller.is_admin())?;
        store::set_onboarding(&tx, target, to.as_str()).await?;
        let user = store::user_by_id(&tx, target)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user.into())
    }

    /// A role, status or tier change pushed by the identity provider's webhook.
    pub async fn rbac_sync(
        &self,
        identity: &Identity,
        user_id: &str,
        role: Option<&str>,
        status: Option<&str>,
        pricing_tier: Option<&str>,
    ) -> Result<User, AuthError> {
        if identity.principal != Principal::System {
            return Err(AuthError::Forbidden(
                "only the RBAC sync webhook may change roles",
            ));
        }
        let user_id = parse_user_id("user_id", user_id)?;
        let role = role.map(str::trim).filter(|r| !r.is_empty());
        let status = status.map(str::trim).filter(|s| !s.is_empty());
        let pricing_tier = pricing_tier.map(str::trim).filter(|t| !t.is_empty());
        if role.is_none() && status.is_none() && pricing_tier.is_none() {
            return Err(AuthError::invalid(
                "role",
                "one of role, status or pricing_tier is required",
            ));
        }
        status.map(domain::check_status).transpose()?;
        pricing_tier.map(domain::check_tier).transpose()?;
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let role_id = match role {
            Some(role) => Some(store::role_id(&tx, role).await?.ok_or_else(|| {
                AuthError::invalid(
                    "role",
                    "role must be administrator, creator, viewer or a role uuid",
                )
            })?),
            None => None,
        };
        let synced = store::sync_user(&tx, user_id, role_id, status, pricing_tier)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        // A role change or a user left inactive ends every refresh session, in the transaction
        // of the change: reactivating the user later does not bring the old sessions back.
        if synced.role_changed || synced.status != "active" {
            let revoked = store::revoke_refresh_sessions(&tx, user_id).await?;
            tracing::info!(
                %user_id,
                revoked,
                role_changed = synced.role_changed,
                status = %synced.status,
                "rbac sync revoked refresh sessions"
            );
        }
        let user = store::user_by_id(&tx, user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// A short-lived token for the target user, marked with the administrator's id and audited
    /// before it is handed out.
    pub async fn impersonate(
        &self,
        identity: &Identity,
        target: &str,
    ) -> Result<Impersonation, AuthError> {
        let admin = identity.require_admin()?;
        let target = parse_user_id("user_id", target)?;
        if target == admin.id {
            return Err(AuthError::invalid(
                "user_id",
                "an administrator cannot impersonate themselves",
            ));
        }
        let user = self.user(target).await?;
        if user.status != "active" {
            return Err(AuthError::Forbidden(
                "only active users can be impersonated",
            ));
        }
        // An administrator's session would hand over everything an administrator can do.
        if user.role.as_deref() == Some(domain::ADMIN_ROLE) || user.admin_access {
            return Err(AuthError::Forbidden(
                "administrators cannot be impersonated",
            ));
        }
        let expires_at = self.after(self.impersonation_ttl)?;
        let db = self.pool.get().await?;
        store::insert_impersonation(&db, admin.id, target, &identity.request_id, expires_at)
            .await?;
        tracing::info!(admin = %admin.id, target = %target, "impersonation token issued");
        Ok(Impersonation {
            access_token: self.access_token(&user, self.impersonation_ttl, Some(admin.id))?,
            expires: self.impersonation_ttl,
            user,
        })
    }

    pub async fn update_profile(
        &self,
        identity: &Identity,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<User, AuthError> {
        let user = identity.require_user()?;
        let first_name = domain::normalize_name("first_name", first_name)?;
        let last_name = domain::normalize_name("last_name", last_name)?;
        let db = self.pool.get().await?;
        store::update_names(&db, user.id, first_name.as_deref(), last_name.as_deref()).await?;
        store::user_by_id(&db, user.id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    /// The caller's own names and email (Directus' `PATCH /users/me`). `None` leaves a field as
    /// it is; a blank name clears it. Nothing to change answers the user as they are.
    pub async fn update_me(
        &self,
        identity: &Identity,
        first_name: Option<&str>,
        last_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<User, AuthError> {
        let user = identity.require_user()?;
        // `Some(None)`: cleared.
        let first_name = first_name
            .map(|name| domain::normalize_name("first_name", Some(name)))
            .transpose()?;
        let last_name = last_name
            .map(|name| domain::normalize_name("last_name", Some(name)))
            .transpose()?;
        let email = email
            .map(|email| domain::normalize_email("email", email))
            .transpose()?;
        if first_name.is_none() && last_name.is_none() && email.is_none() {
            return self.user(user.id).await;
        }
        if let Some(directus) = &self.directus {
            let mut change = serde_json::Map::new();
            if let Some(name) = &first_name {
                change.insert("first_name".into(), name.clone().into());
            }
            if let Some(name) = &last_name {
                change.insert("last_name".into(), name.clone().into());
            }
            if let Some(email) = &email {
                change.insert("email".into(), email.clone().into());
            }
            let updated = directus.client.update_user(user.id, change).await?;
            let db = self.pool.get().await?;
            store::upsert_mirror(&db, &updated, self.clock.now()).await?;
            return store::user_by_id(&db, user.id)
                .await?
                .ok_or(AuthError::NotFound("user"));
        }
        let db = self.pool.get().await?;
        let changed = store::update_me(
            &db,
            user.id,
            first_name.as_ref().map(Option::as_deref),
            last_name.as_ref().map(Option::as_deref),
            email.as_deref(),
        )
        .await?;
        if !changed {
            return Err(AuthError::EmailTaken);
        }
        store::user_by_id(&db, user.id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    pub async fn set_avatar(
        &self,
        identity: &Identity,
        content_type: &str,
        image: &[u8],
    ) -> Result<User, AuthError> {
        let user = identity.require_user()?;
        let content_type = domain::check_avatar(content_type, image, self.avatar_max_bytes)?;
        let db = self.pool.get().await?;
        store::upsert_avatar(&db, user.id, content_type, image).await?;
        store::user_by_id(&db, user.id)
            .await?
            .ok_or(AuthError::NotFound("user"))
    }

    pub async fn avatar(&self, identity: &Identity) -> Result<(String, Vec<u8>), AuthError> {
        let user = identity.require_user()?;
        let db = self.pool.get().await?;
        store::avatar(&db, user.id)
            .await?
            .ok_or(AuthError::NotFound("avatar"))
    }

    /// Creates the first administrator from configuration when no user has that email yet.
    pub async fn ensure_admin(&self, email: &str, password: &str) -> Result<(), AuthError> {
        let email = domain::normalize_email("ADMIN_EMAIL", email)?;
        domain::check_new_password(password)?;
        if store::admin_exists(&self.pool.get().await?, &email).await? {
            return Ok(());
        }
        let hash = self.hasher.hash(password.to_owned()).await?;
        if store::ensure_admin(&self.pool.get().await?, &email, &hash).await? {
            tracing::info!(email = %email, "created the first administrator");
        }
        Ok(())
    }

    /// The id of the administrator with this email, for the CLI.
    pub async fn admin_id(&self, email: &str) -> Result<Uuid, AuthError> {
        let db = self.pool.get().await?;
        match store::user_by_email(&db, email).await? {
            Some((user, _)) if user.role.as_deref() == Some(domain::ADMIN_ROLE) => Ok(user.id),
            _ => Err(AuthError::NotFound("administrator")),
        }
    }

    pub async fn delete_expired_sessions(&self) -> Result<u64, AuthError> {
        let db = self.pool.get().await?;
        store::delete_expired_sessions(&db, self.clock.now()).await
    }
}
