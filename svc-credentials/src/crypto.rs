//! Sealing and opening the vault's secrets.
//!
//! AES-256-GCM from `ring`, a random 96-bit nonce for every seal, and associated data binding each
//! ciphertext to its table, row and field: a ciphertext copied to another row, or to another
//! field of the same row, does not open. Keys are versioned; new data is sealed under the newest
//! version, a retired version no longer opens anything.
//!
//! Stored form: `{"enc":"v<version>:<nonce hex>:<tag hex>:<ciphertext hex>"}`.
//!
//! Records of the original Node service are `v1:` records sealed without associated data, with
//! a 12- or 16-byte IV. They still open (unless `accept_legacy` is off), but only through
//! [`KeyRing::open_imported`], for a row imported from the original service (its key-version
//! column NULL): there, a `v1` record that does not open with its binding is tried without one.
//! [`KeyRing::open`], for every row this service wrote, opens bound records only, so an unbound
//! record copied into one of our rows (or into another table) does not open there; it is refused
//! as [`CryptoError::LegacyRefused`]. A record sealed with a binding never opens without it.
//! `rotate` re-seals legacy records with their binding, after which legacy opening can be
//! switched off.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use zeroize::Zeroizing;

/// AES-256: 32-byte keys.
pub const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The key version of the original service's records.
pub const LEGACY_VERSION: u32 = 1;
/// Some records of the original service were sealed with 16-byte IVs, which ring does not take.
const LEGACY_LONG_IV_LEN: usize = 16;

type LegacyLongIvCipher = aes_gcm::AesGcm<aes_gcm::aes::Aes256, U16>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the stored secret is not in the vault's format")]
    Malformed,
    #[error("the stored secret is sealed under key version {0}, which is not configured")]
    UnknownVersion(u32),
    #[error("the stored secret is sealed under key version {0}, which is retired")]
    Retired(u32),
    #[error(
        "the stored secret does not authenticate: altered, moved from another row, or sealed under another key"
    )]
    Unauthentic,
    #[error(
        "the stored secret is an unbound record of the original service, which opens only in a row imported from it (no key version) while CREDENTIALS_ACCEPT_LEGACY is on"
    )]
    LegacyRefused,
    #[error("the system's random number generator failed")]
    Random,
}

/// Where a ciphertext lives. Its text is the associated data of the seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub table: &'static str,
    pub row: Uuid,
    pub field: &'static str,
}

impl Binding {
    fn associated_data(&self) -> String {
        format!(
            "genie.credentials.v1|{}|{}|{}",
            self.table, self.row, self.field
        )
    }
}

/// A sealed secret: `v<version>:<nonce>:<tag>:<ciphertext>`, all hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub version: u32,
    pub text: String,
}

impl Sealed {
    /// The JSON stored in the row's column.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "enc": self.text })
    }
}

/// The `enc` text of a stored `{"enc": ...}` value.
pub fn enc_text(stored: &serde_json::Value) -> Result<&str, CryptoError> {
    stored
        .get("enc")
        .and_then(serde_json::Value::as_str)
        .ok_or(CryptoError::Malformed)
}

/// The key version a stored text names, without opening it.
pub fn version_of(text: &str) -> Option<u32> {
    Envelope::parse(text).ok().map(|envelope| envelope.version)
}

/// A secret opened: the plaintext (wiped from memory when dropped) and what it was sealed with.
pub struct Opened {
    pub plaintext: Zeroizing<Vec<u8>>,
    pub version: u32,
    /// Sealed by the original service, without a binding.
    pub legacy: bool,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext", &"[redacted]")
            .field("version", &self.version)
            .field("legacy", &self.legacy)
            .finish()
    }
}

struct Envelope {
    version: u32,
    iv: Vec<u8>,
    tag: [u8; TAG_LEN],
    ciphertext: Vec<u8>,
}

impl Envelope {
    fn parse(text: &str) -> Result<Self, CryptoError> {
        let mut parts = text.split(':');
        let (Some(version), Some(iv), Some(tag), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Malformed);
        };
        let version: u32 = version
            .strip_prefix('v')
            .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .filter(|version| *version > 0)
            .ok_or(CryptoError::Malformed)?;
        let iv = hex::decode(iv).map_err(|_| CryptoError::Malformed)?;
        let tag = hex::decode(tag)
            .ok()
            .and_then(|tag| <[u8; TAG_LEN]>::try_from(tag).ok())
            .ok_or(CryptoError::Malformed)?;
        let ciphertext = hex::decode(ciphertext).map_err(|_| CryptoError::Malformed)?;
        let iv_fits =
            iv.len() == NONCE_LEN || (iv.len() == LEGACY_LONG_IV_LEN && version == LEGACY_VERSION);
        if !iv_fits {
            return Err(CryptoError::Malformed);
        }
        Ok(Self {
            version,
            iv,
            tag,
            ciphertext,
        })
    }
}

struct VersionKey {
    key: LessSafeKey,
    /// Only for the legacy version.
    legacy_long_iv: Option<LegacyLongIvCipher>,
    fingerprint: String,
}

/// A key given to [`KeyRing::new`], wiped from memory when dropped.
pub struct KeyMaterial {
    pub version: u32,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyMaterial(v{}, [redacted])", self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("key version {0} is given twice")]
    Duplicate(u32),
    #[error("key version {0}: a key must be exactly {KEY_LEN} bytes")]
    Length(u32),
    #[error("key versions start at 1")]
    VersionZero,
    #[error("no key is configured")]
    Empty,
    #[error("key version {0} is the newest and cannot be retired")]
    NewestRetired(u32),
}

/// The configured keys: every version that may open, the newest that seals.
pub struct KeyRing {
    keys: BTreeMap<u32, VersionKey>,
    retired: BTreeSet<u32>,
    newest: u32,
    accept_legacy: bool,
    random: SystemRandom,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("retired", &self.retired)
            .field("newest", &self.newest)
            .field("accept_legacy", &self.accept_legacy)
            .finish()
    }
}

/// A one-way name of a key, to notice a version whose key was changed. Reveals nothing usable
/// about the key.
fn fingerprint(bytes: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, bytes);
    let tag = hmac::sign(&key, b"genie.credentials key fingerprint");
    hex::encode(&tag.as_ref()[..8])
}

impl KeyRing {
    pub fn new(
        keys: Vec<KeyMaterial>,
        retired: BTreeSet<u32>,
        accept_legacy: bool,
    ) -> Result<Self, KeyRingError> {
        let mut ring = BTreeMap::new();
        for material in keys {
            let version = material.version;
            if version == 0 {
                return Err(KeyRingError::VersionZero);
            }
            if material.bytes.len() != KEY_LEN {
                return Err(KeyRingError::Length(version));
            }
            let unbound = UnboundKey::new(&AES_256_GCM, &material.bytes)
                .map_err(|_| KeyRingError::Length(version))?;
            let legacy_long_iv = (version == LEGACY_VERSION)
                .then(|| LegacyLongIvCipher::new_from_slice(&material.bytes))
                .transpose()
                .map_err(|_| KeyRingError::Length(version))?;
            let key = VersionKey {
                key: LessSafeKey::new(unbound),
                legacy_long_iv,
                fingerprint: fingerprint(&material.bytes),
            };
            if ring.insert(version, key).is_some() {
                return Err(KeyRingError::Duplicate(version));
            }
        }
        let newest = *ring.keys().next_back().ok_or(KeyRingError::Empty)?;
        if retired.contains(&newest) {
            return Err(KeyRingError::NewestRetired(newest));
        }
        Ok(Self {
            keys: ring,
            retired,
            newest,
            accept_legacy,
            random: SystemRandom::new(),
        })
    }

    /// The version new secrets are sealed under.
    pub fn newest(&self) -> u32 {
        self.newest
    }

    /// Every configured version with its fingerprint and whether it is retired.
    pub fn versions(&self) -> impl Iterator<Item = (u32, &str, bool)> + '_ {
        self.keys.iter().map(|(version, key)| {
            (
                *version,
                key.fingerprint.as_str(),
                self.retired.contains(version),
            )
        })
    }

    /// Seals `plaintext` for `binding` under the newest key.
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let key = &self.keys[&self.newest];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        // The buffer holds the plaintext until it is sealed in place; wiped in any case.
        let mut buffer = Zeroizing::new(plaintext.to_vec());
        let aad = binding.associated_data();
        let tag = key
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Unauthentic)?;
        Ok(Sealed {
            version: self.newest,
            text: format!(
                "v{}:{}:{}:{}",
                self.newest,
                hex::encode(nonce),
                hex::encode(tag.as_ref()),
                hex::encode(buffer.as_slice())
            ),
        })
    }

    /// Opens the `enc` text stored for `binding` in a row this service wrote (its key version
    /// recorded): only a record sealed with that binding opens.
    pub fn open(&self, binding: &Binding, text: &str) -> Result<Opened, CryptoError> {
        self.open_row(binding, text, false)
    }

    /// Opens the `enc` text of a row imported from the original service (its key version not
    /// recorded): a bound record, or, while `accept_legacy` is on, an unbound `v1` record.
    pub fn open_imported(&self, binding: &Binding, text: &str) -> Result<Opened, CryptoError> {
        self.open_row(binding, text, true)
    }

    fn open_row(
        &self,
        binding: &Binding,
        text: &str,
        imported: bool,
    ) -> Result<Opened, CryptoError> {
        let envelope = Envelope::parse(text)?;
        let version = envelope.version;
        if self.retired.contains(&version) {
            return Err(CryptoError::Retired(version));
        }
        let key = self
            .keys
            .get(&version)
            .ok_or(CryptoError::UnknownVersion(version))?;
        let aad = binding.associated_data();
        if let Ok(nonce) = <[u8; NONCE_LEN]>::try_from(envelope.iv.as_slice())
            && let Some(plaintext) = open_with_ring(&key.key, nonce, aad.as_bytes(), &envelope)
        {
            return Ok(Opened {
                plaintext,
                version,
                legacy: false,
            });
        }
        if version != LEGACY_VERSION {
            return Err(CryptoError::Unauthentic);
        }
        let plaintext = match (
            <[u8; NONCE_LEN]>::try_from(envelope.iv.as_slice()),
            &key.legacy_long_iv,
        ) {
            (Ok(nonce), _) => open_with_ring(&key.key, nonce, &[], &envelope),
            (Err(_), Some(cipher)) => open_long_iv(cipher, &envelope),
            (Err(_), None) => None,
        };
        match plaintext {
            None => Err(CryptoError::Unauthentic),
            Some(plaintext) if imported && self.accept_legacy => Ok(Opened {
                plaintext,
                version,
                legacy: true,
            }),
            // An authentic record of the original, where it may not open: said as such, and the
            // plaintext wiped at once (it is never handed out).
            Some(_) => Err(CryptoError::LegacyRefused),
        }
    }
}

fn open_with_ring(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    envelope: &Envelope,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(envelope.ciphertext.len() + TAG_LEN));
    buffer.extend_from_slice(&envelope.ciphertext);
    buffer.extend_from_slice(&envelope.tag);
    let length = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut buffer,
        )
        .ok()?
        .len();
    buffer.truncate(length);
    Some(buffer)
}

fn open_long_iv(cipher: &LegacyLongIvCipher, envelope: &Envelope) -> Option<Zeroizing<Vec<u8>>> {
    let iv: [u8; LEGACY_LONG_IV_LEN] = envelope.iv.as_slice().try_into().ok()?;
    let mut buffer = Zeroizing::new(envelope.ciphertext.clone());
    cipher
        .decrypt_in_place_detached(
            &aes_gcm::Nonce::<U16>::from(iv),
            &[],
            &mut buffer,
            &aes_gcm::Tag::from(envelope.tag),
        )
        .ok()?;
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material(version: u32, byte: u8) -> KeyMaterial {
        KeyMaterial {
            version,
            bytes: Zeroizing::new(vec![byte; KEY_LEN]),
        }
    }

    fn ring(versions: &[u32], retired: &[u32]) -> KeyRing {
        KeyRing::new(
            versions
                .iter()
                .map(|v| material(*v, *v as u8 + 0x40))
                .collect(),
            retired.iter().copied().collect(),
            true,
        )
        .unwrap()
    }

    fn binding(row: Uuid) -> Binding {
        Binding {
            table: "vault_entries",
            row,
            field: "secret",
        }
    }

    #[test]
    fn a_seal_opens_for_its_own_binding_only() {
        let keys = ring(&[1, 2], &[]);
        let row = Uuid::new_v4();
        let sealed = keys.seal(&binding(row), b"{\"pw\":\"s3cret\"}").unwrap();
        assert_eq!(sealed.version, 2);
        assert!(sealed.text.starts_with("v2:"));
        assert!(!sealed.text.contains("s3cret"));
        let opened = keys.open(&binding(row), &sealed.text).unwrap();
        assert_eq!(opened.plaintext.as_slice(), b"{\"pw\":\"s3cret\"}");
        assert!(!opened.legacy);

        let other_row = binding(Uuid::new_v4());
        assert_eq!(
            keys.open(&other_row, &sealed.text).unwrap_err(),
            CryptoError::Unauthentic
        );
        let other_field = Binding {
            field: "cookies",
            ..binding(row)
        };
        assert_eq!(
            keys.open(&other_field, &sealed.text).unwrap_err(),
            CryptoError::Unauthentic
        );
    }

    #[test]
    fn every_seal_has_its_own_nonce() {
        let keys = ring(&[1], &[]);
        let row = binding(Uuid::new_v4());
        let a = keys.seal(&row, b"same").unwrap();
        let b = keys.seal(&row, b"same").unwrap();
        assert_ne!(a.text, b.text);
    }

    #[test]
    fn a_flipped_bit_anywhere_does_not_open() {
        let keys = ring(&[1], &[]);
        let row = binding(Uuid::new_v4());
        let sealed = keys.seal(&row, b"payload").unwrap();
        // Every hex digit of nonce, tag and ciphertext, one at a time.
        for (index, digit) in sealed.text.char_indices().skip(3) {
            let Some(value) = digit.to_digit(16) else {
                continue;
            };
            let flipped = std::char::from_digit(value ^ 1, 16).unwrap();
            let mut text = sealed.text.clone();
            text.replace_range(index..=index, &flipped.to_string());
            assert!(keys.open(&row, &text).is_err(), "flip at {index}");
        }
    }

    #[test]
    fn unknown_and_retired_versions_are_refused_by_name() {
        let old = ring(&[1], &[]);
        let row = binding(Uuid::new_v4());
        let sealed = old.seal(&row, b"x").unwrap();
        let retired = ring(&[1, 2], &[1]);
        assert_eq!(
            retired.open(&row, &sealed.text).unwrap_err(),
            CryptoError::Retired(1)
        );
        let newer = ring(&[1, 2], &[]).seal(&row, b"x").unwrap();
        assert_eq!(
            old.open(&row, &newer.text).unwrap_err(),
            CryptoError::UnknownVersion(2)
        );
    }

    #[test]
    fn another_key_under_the_same_version_does_not_open() {
        let row = binding(Uuid::new_v4());
        let sealed = ring(&[1], &[]).seal(&row, b"x").unwrap();
        let other = KeyRing::new(vec![material(1, 0x99)], BTreeSet::new(), true).unwrap();
        assert_eq!(
            other.open(&row, &sealed.text).unwrap_err(),
            CryptoError::Unauthentic
        );
    }

    #[test]
    fn malformed_texts_are_refused() {
        let keys = ring(&[1], &[]);
        let row = binding(Uuid::new_v4());
        let nonce = "00".repeat(12);
        let tag = "00".repeat(16);
        for text in [
            "",
            "v1",
            "1:00:00:00",
            "v0:00:00:00",
            "v1:zz:00:00",
            &format!("v1:{nonce}:{tag}"),
            &format!("v1:{nonce}:{tag}:00:00"),
            &format!("v1:{}:{tag}:00", "00".repeat(8)),
            &format!("v2:{}:{tag}:00", "00".repeat(16)),
            &format!("v1:{nonce}:{}:00", "00".repeat(15)),
            &format!("v+1:{nonce}:{tag}:00"),
        ] {
            assert_eq!(
                keys.open(&row, text).unwrap_err(),
                CryptoError::Malformed,
                "{text}"
            );
        }
    }

    #[test]
    fn the_key_ring_checks_its_keys() {
        let short = KeyMaterial {
            version: 1,
            bytes: Zeroizing::new(vec![1; 31]),
        };
        assert_eq!(
            KeyRing::new(vec![short], BTreeSet::new(), true).unwrap_err(),
            KeyRingError::Length(1)
        );
        assert_eq!(
            KeyRing::new(vec![material(1, 1), material(1, 2)], BTreeSet::new(), true).unwrap_err(),
            KeyRingError::Duplicate(1)
        );
        assert_eq!(
            KeyRing::new(vec![], BTreeSet::new(), true).unwrap_err(),
            KeyRingError::Empty
        );
        assert_eq!(
            KeyRing::new(vec![material(1, 1)], BTreeSet::from([1]), true).unwrap_err(),
            KeyRingError::NewestRetired(1)
        );
        let keys = ring(&[1, 3], &[1]);
        assert_eq!(keys.newest(), 3);
        let versions: Vec<_> = keys
            .versions()
            .map(|(v, _, retired)| (v, retired))
            .collect();
        assert_eq!(versions, [(1, true), (3, false)]);
        assert!(!format!("{keys:?}").contains("41"));
    }

    #[test]
    fn fingerprints_differ_by_key_and_do_not_show_it() {
        let a = fingerprint(&[7; KEY_LEN]);
        assert_eq!(a, fingerprint(&[7; KEY_LEN]));
        assert_ne!(a, fingerprint(&[8; KEY_LEN]));
        assert_eq!(a.len(), 16);
    }

    fn legacy_vectors() -> (Vec<u8>, Vec<serde_json::Value>) {
        use base64::Engine as _;
        let file: serde_json::Value =
            serde_json::from_str(include_str!("../tests/vectors/legacy_node.json")).unwrap();
        let key = base64::engine::general_purpose::STANDARD
            .decode(file["key_b64"].as_str().unwrap())
            .unwrap();
        (key, file["vectors"].as_array().unwrap().clone())
    }

    fn legacy_ring(key: &[u8], accept_legacy: bool) -> KeyRing {
        let material = KeyMaterial {
            version: LEGACY_VERSION,
            bytes: Zeroizing::new(key.to_vec()),
        };
        KeyRing::new(vec![material], BTreeSet::new(), accept_legacy).unwrap()
    }

    /// Vectors made by Node's own crypto module (tests/vectors/make_legacy_vectors.mjs), with
    /// 12- and 16-byte IVs, as the original service wrote them.
    #[test]
    fn records_of_the_original_node_service_open() {
        let (key, vectors) = legacy_vectors();
        let keys = legacy_ring(&key, true);
        let mut iv_lengths = BTreeSet::new();
        for vector in &vectors {
            let text = enc_text(&vector["stored"]).unwrap();
            let opened = keys.open_imported(&binding(Uuid::new_v4()), text).unwrap();
            assert_eq!(
                opened.plaintext.as_slice(),
                vector["plaintext"].as_str().unwrap().as_bytes()
            );
            assert!(opened.legacy);
            assert_eq!(opened.version, LEGACY_VERSION);
            iv_lengths.insert(vector["iv_length"].as_u64().unwrap());
        }
        assert_eq!(iv_lengths, BTreeSet::from([12, 16]));
    }

    #[test]
    fn legacy_records_are_refused_once_legacy_opening_is_off_or_tampered() {
        let (key, vectors) = legacy_vectors();
        let strict = legacy_ring(&key, false);
        let lenient = legacy_ring(&key, true);
        for vector in &vectors {
            let text = enc_text(&vector["stored"]).unwrap();
            let row = binding(Uuid::new_v4());
            assert_eq!(
                strict.open_imported(&row, text).unwrap_err(),
                CryptoError::LegacyRefused
            );
            let (head, last) = text.split_at(text.len() - 1);
            let flipped = if last == "0" { "1" } else { "0" };
            let tampered = format!("{head}{flipped}");
            // (Malformed when the flip lands on the separator of an empty ciphertext.)
            assert!(matches!(
                lenient.open_imported(&row, &tampered),
                Err(CryptoError::Unauthentic | CryptoError::Malformed)
            ));
        }
    }

    #[test]
    fn legacy_records_open_only_in_an_imported_row() {
        let (key, vectors) = legacy_vectors();
        let lenient = legacy_ring(&key, true);
        for vector in &vectors {
            let text = enc_text(&vector["stored"]).unwrap();
            assert_eq!(
                lenient.open(&binding(Uuid::new_v4()), text).unwrap_err(),
                CryptoError::LegacyRefused,
                "a row of ours never opens an unbound record"
            );
        }
    }

    #[test]
    fn a_legacy_record_resealed_is_bound_to_its_row() {
        let (key, vectors) = legacy_vectors();
        let keys = legacy_ring(&key, true);
        let row = binding(Uuid::new_v4());
        let text = enc_text(&vectors[0]["stored"]).unwrap();
        let opened = keys.open_imported(&row, text).unwrap();
        let resealed = keys.seal(&row, &opened.plaintext).unwrap();
        assert!(!keys.open(&row, &resealed.text).unwrap().legacy);
        assert_eq!(
            keys.open(&binding(Uuid::new_v4()), &resealed.text)
                .unwrap_err(),
            CryptoError::Unauthentic
        );
    }
}
