//! The rules of svc-auth as plain types and functions: onboarding moves, what a valid email,
//! password, name, tier, status or avatar is.

use std::fmt;
use std::str::FromStr;

use crate::error::AuthError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OnboardingState {
    ExtensionInstall,
    DataCollection,
    Processing,
    Complete,
}

impl OnboardingState {
    pub const ALL: [Self; 4] = [
        Self::ExtensionInstall,
        Self::DataCollection,
        Self::Processing,
        Self::Complete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExtensionInstall => "EXTENSION_INSTALL",
            Self::DataCollection => "DATA_COLLECTION",
            Self::Processing => "PROCESSING",
            Self::Complete => "COMPLETE",
        }
    }

    /// Users move forward only (skipping ahead is allowed, staying put is a no-op);
    /// administrators may set any state.
    pub fn check_move(self, to: Self, by_admin: bool) -> Result<(), AuthError> {
        if by_admin || to >= self {
            Ok(())
        } else {
            Err(AuthError::OnboardingBackward { from: self, to })
        }
    }
}

impl fmt::Display for OnboardingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnboardingState {
    type Err = AuthError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| {
                AuthError::invalid(
                    "state",
                    "state must be one of EXTENSION_INSTALL, DATA_COLLECTION, PROCESSING, COMPLETE",
                )
            })
    }
}

pub const ADMIN_ROLE: &str = common::identity::ADMINISTRATOR;
/// What `/api/register` makes of a new user (docs/DESIGN.md §3).
pub const NEW_USER_ROLE: &str = "creator";
pub const NEW_USER_TIER: &str = "starter";

pub const TIERS: [&str; 4] = ["starter", "creator", "pro", "studio"];
pub const STATUSES: [&str; 5] = ["active", "invited", "draft", "suspended", "archived"];

pub fn check_tier(tier: &str) -> Result<(), AuthError> {
    if TIERS.contains(&tier) {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "pricing_tier",
            "pricing_tier must be one of starter, creator, pro, studio",
        ))
    }
}

pub fn check_status(status: &str) -> Result<(), AuthError> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(AuthError::invalid(
            "status",
            "status must be one of active, invited, draft, suspended, archived",
        ))
    }
}

/// Deliberately loose, as Directus is: one `@` with text on both sides and a dot in the domain.
/// Returns the trimmed address.
pub fn normalize_email(field: &str, email: &str) -> Result<String, AuthError> {
    let email = email.trim();
    if email.is_empty() {
        return Err(AuthError::missing(field));
    }
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email.to_owned())
    } else {
        Err(AuthError::invalid(
            field,
            format!("{field} is not a valid email address"),
        ))
    }
}

pub const PASSWORD_MIN_CHARS: usize = 8;
/// Bounds the work one request can ask of argon2.
pub const PASSWORD_MAX_BYTES: usize = 256;

pub fn check_new_password(password: &str) -> Result<(), AuthError> {
    if password.is_empty() {
        return Err(AuthError::missing("password"));
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(AuthError::invalid(
            "password",
            format!("password must have at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(AuthError::invalid(
            "password",
            format!("password must have at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub const NAME_MAX_CHARS: usize = 100;

/// Trims a name; an empty one becomes `None`.
pub fn normalize_name(field: &str, name: Option<&str>) -> Result<Option<String>, AuthError> {
    let Some(name) = name.map(str::trim).filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > NAME_MAX_CHARS || name.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            field,
            format!("{field} must be at most {NAME_MAX_CHARS} printable characters"),
        ));
    }
    Ok(Some(name.to_owned()))
}

pub const INVITE_DEFAULT_HOURS: u32 = 72;
pub const INVITE_MAX_HOURS: u32 = 24 * 30;

pub fn check_invite_hours(hours: Option<u32>) -> Result<u32, AuthError> {
    match hours.unwrap_or(INVITE_DEFAULT_HOURS) {
        hours @ 1..=INVITE_MAX_HOURS => Ok(hours),
        _ => Err(AuthError::invalid(
            "expires_in_hours",
            format!("expires_in_hours must be between 1 and {INVITE_MAX_HOURS}"),
        )),
    }
}

/// Image types accepted as avatars, each with the bytes its files start with.
const AVATAR_TYPES: [(&str, &[u8]); 4] = [
    ("image/png", b"\x89PNG\r\n\x1a\n"),
    ("image/jpeg", b"\xff\xd8\xff"),
    ("image/gif", b"GIF8"),
    ("image/webp", b"RIFF"),
];

/// The declared type must be an accepted image type and the bytes must really be one.
pub fn check_avatar(
    content_type: &str,
    image: &[u8],
    max_bytes: usize,
) -> Result<&'static str, AuthError> {
    if image.is_empty() {
        return Err(AuthError::missing("avatar"));
    }
    if image.len() > max_bytes {
        return Err(AuthError::AvatarTooLarge { max_bytes });
    }
    let declared = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (kind, magic) = AVATAR_TYPES
        .iter()
        .find(|(kind, _)| *kind == declared)
        .ok_or_else(|| {
            AuthError::invalid("avatar", "avatar must be a PNG, JPEG, GIF or WebP image")
        })?;
    let is_webp = *kind != "image/webp" || image.get(8..12) == Some(b"WEBP");
    if image.starts_with(magic) && is_webp {
        Ok(kind)
    } else {
        Err(AuthError::invalid(
            "avatar",
            format!("avatar content is not a {declared} image"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OnboardingState::*;

    #[test]
    fn onboarding_moves_forward_only_unless_admin() {
        assert!(ExtensionInstall.check_move(DataCollection, false).is_ok());
        assert!(ExtensionInstall.check_move(Complete, false).is_ok());
        assert!(Processing.check_move(Processing, false).is_ok());
        assert!(Processing.check_move(DataCollection, false).is_err());
        assert!(Complete.check_move(ExtensionInstall, true).is_ok());
        assert_eq!("PROCESSING".parse::<OnboardingState>().unwrap(), Processing);
        assert!("processing".parse::<OnboardingState>().is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(normalize_email("email", " a@b.co ").unwrap(), "a@b.co");
        for bad in [
            "", "ab.co", "a@b", "a@@b.co", "a b@c.co", "@b.co", "a@.co", "a@b.co.",
        ] {
            assert!(normalize_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough").is_ok());
        assert!(check_new_password(&"x".repeat(300)).is_err());
        assert_eq!(
            normalize_name("first_name", Some("  Ada "))
                .unwrap()
                .as_deref(),
            Some("Ada")
        );
        assert_eq!(normalize_name("first_name", Some("  ")).unwrap(), None);
        assert!(normalize_name("first_name", Some(&"x".repeat(101))).is_err());
    }

    #[test]
    fn avatars_are_checked_by_type_size_and_content() {
        let png = b"\x89PNG\r\n\x1a\n rest of the file";
        assert_eq!(check_avatar("image/png", png, 100).unwrap(), "image/png");
        assert!(
            check_avatar("image/jpeg", png, 100).is_err(),
            "declared type must match"
        );
        assert!(check_avatar("text/html", b"<html>", 100).is_err());
        assert!(matches!(
            check_avatar("image/png", png, 10),
            Err(AuthError::AvatarTooLarge { .. })
        ));
        assert!(check_avatar("image/webp", b"RIFF\0\0\0\0WAVE", 100).is_err());
        assert!(check_avatar("image/webp", b"RIFF\0\0\0\0WEBPVP8 ", 100).is_ok());
        assert!(check_avatar("image/png", b"", 100).is_err());
    }

    #[test]
    fn invite_lifetimes() {
        assert_eq!(check_invite_hours(None).unwrap(), 72);
        assert!(check_invite_hours(Some(0)).is_err());
        assert!(check_invite_hours(Some(INVITE_MAX_HOURS + 1)).is_err());
    }
}
