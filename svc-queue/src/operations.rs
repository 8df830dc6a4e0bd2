//! What a media job may ask for: the operations (docs/DESIGN.md §6), their parameters, and the
//! input. Plain functions, checked before the quota is touched.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::error::QueueError;

/// The queue every media operation goes to.
pub const MEDIA_QUEUE: &str = "media-jobs";
/// Every queue the service declares (scrape and onboarding jobs come with their producers).
pub const QUEUES: [&str; 3] = [MEDIA_QUEUE, "scrape-jobs", "onboarding-jobs"];

pub const DEFAULT_PRIORITY: i16 = 10;
/// Videos `join_videos` appends after its input.
pub const MAX_JOINED: usize = 9;
pub const PRIORITIES: std::ops::RangeInclusive<i16> = 1..=20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Image,
    Video,
}

/// A parameter an operation reads: its name, whether it must be there, and what it holds.
#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    required: bool,
    kind: ParamKind,
}

#[derive(Debug, Clone, Copy)]
enum ParamKind {
    /// A whole number in the range.
    Integer(i64, i64),
    /// A number of seconds, fractions allowed, at least zero.
    Seconds,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Text of 1 to 200 characters.
    Text,
    /// 1 to 9 ids of stored files (the service checks they are the caller's).
    FileIds,
}

const fn required(name: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        required: true,
        kind,
    }
}

const fn optional(name: &'static str, kind: ParamKind) -> Param {
    Param {
        name,
        required: false,
        kind,
    }
}

const PIXELS: ParamKind = ParamKind::Integer(1, 10_000);
const OFFSET: ParamKind = ParamKind::Integer(0, 10_000);
const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "webp", "gif", "bmp", "tiff"];
const POSITIONS: &[&str] = &[
    "top-left",
    "top-right",
    "bottom-left",
    "bottom-right",
    "center",
];

/// Resizing and cropping read the same parameters for an image as for a video.
const RESIZE: &[Param] = &[optional("width", PIXELS), optional("height", PIXELS)];
const SIZE: &[&str] = &["width", "height"];
const CROP: &[Param] = &[
    required("x", OFFSET),
    required("y", OFFSET),
    required("width", PIXELS),
    required("height", PIXELS),
];

pub struct Operation {
    pub name: &'static str,
    pub medium: Medium,
    params: &'static [Param],
    /// At least one of these must be given (for a resize: width or height).
    one_of: &'static [&'static str],
}

pub const OPERATIONS: &[Operation] = &[
    Operation {
        name: "convert_image",
        medium: Medium::Image,
        params: &[required("format", ParamKind::OneOf(IMAGE_FORMATS))],
        one_of: &[],
    },
    Operation {
        name: "resize_image",
        medium: Medium::Image,
        params: RESIZE,
        one_of: SIZE,
    },
    Operation {
        name: "crop_image",
        medium: Medium::Image,
        params: CROP,
        one_of: &[],
    },
    Operation {
        name: "apply_watermark",
        medium: Medium::Image,
        params: &[
            required("text", ParamKind::Text),
            optional("position", ParamKind::OneOf(POSITIONS)),
            optional("opacity", ParamKind::Integer(1, 100)),
        ],
        one_of: &[],
    },
    Operation {
        name: "strip_metadata",
        medium: Medium::Image,
        params: &[],
        one_of: &[],
    },
    Operation {
        name: "create_teaser",
        medium: Medium::Image,
        params: &[
            optional("width", PIXELS),
            optional("height", PIXELS),
            optional("blur", ParamKind::Integer(0, 100)),
        ],
        one_of: &[],
    },
    Operation {
        name: "resize_video",
        medium: Medium::Video,
        params: RESIZE,
        one_of: SIZE,
    },
    Operation {
        name: "crop_video",
        medium: Medium::Video,
        params: CROP,
        one_of: &[],
    },
    Operation {
        name: "compress_video",
        medium: Medium::Video,
        params: &[optional("crf", ParamKind::Integer(18, 51))],
        one_of: &[],
    },
    Operation {
        name: "trim_video",
        medium: Medium::Video,
        params: &[
            required("start", ParamKind::Seconds),
            required("duration", ParamKind::Seconds),
        ],
        one_of: &[],
    },
    Operation {
        name: "join_videos",
        medium: Medium::Video,
        // The videos appended, in order, after the job's input.
        params: &[required("files", ParamKind::FileIds)],
        one_of: &[],
    },
];

/// What the service can run here: video needs ffmpeg.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    pub video: bool,
}

impl Capabilities {
    /// Video when `ffmpeg` and `ffprobe` (which measures inputs and outputs) are on `PATH`.
    pub fn detect() -> Self {
        let on_path = |program: &str| {
            std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
            })
        };
        Self {
            video: on_path("ffmpeg") && on_path("ffprobe"),
        }
    }
}

/// The medium an operation works on; `None` for a name that is no operation.
pub fn medium_of(name: &str) -> Option<Medium> {
    OPERATIONS
        .iter()
        .find(|operation| operation.name == name)
        .map(|operation| operation.medium)
}

pub fn operation(name: &str, capabilities: Capabilities) -> Result<&'static Operation, QueueError> {
    let Some(operation) = OPERATIONS.iter().find(|operation| operation.name == name) else {
        let known: Vec<&str> = OPERATIONS.iter().map(|operation| operation.name).collect();
        return Err(QueueError::invalid(
            "operation",
            format!("unknown operation {name:?}; one of {}", known.join(", ")),
        ));
    };
    if operation.medium == Medium::Video && !capabilities.video {
        return Err(QueueError::UnsupportedOperation(format!(
            "{name} needs ffmpeg and ffprobe, which are not installed where svc-queue runs"
        )));
    }
    Ok(operation)
}

/// The operation's parameters, checked: an object with only the names it reads, each of its kind.
pub fn params(operation: &Operation, json: &str) -> Result<Map<String, Value>, QueueError> {
    let mut params = if json.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(params)) => params,
            Ok(_) => return Err(QueueError::invalid("params", "must be a JSON object")),
            Err(err) => return Err(QueueError::invalid("params", format!("not JSON: {err}"))),
        }
    };
    // A null is an absent parameter: dropped, so that it neither satisfies a rule nor makes two
    // equal requests differ.
    params.retain(|_, value| !value.is_null());
    for name in params.keys() {
        if !operation.params.iter().any(|param| param.name == name) {
            let known: Vec<&str> = operation.params.iter().map(|param| param.name).collect();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(QueueError::invalid(
                &format!("params.{name}"),
                format!(
                    "{} takes no parameter {name:?} (it takes: {known})",
                    operation.name
                ),
            ));
        }
    }
    for param in operation.params {
        match params.get(param.name) {
            None | Some(Value::Null) if param.required => {
                return Err(QueueError::missing(&format!("params.{}", param.name)));
            }
            None | Some(Value::Null) => {}
            Some(value) => check(param, value)?,
        }
    }
    if !operation.one_of.is_empty()
        && !operation
            .one_of
            .iter()
            .any(|name| params.contains_key(*name))
    {
        return Err(QueueError::missing(&format!(
            "params.{}",
            operation.one_of.join(" or params.")
        )));
    }
    Ok(params)
}

fn check(param: &Param, value: &Value) -> Result<(), QueueError> {
    let field = format!("params.{}", param.name);
    let fits = match param.kind {
        ParamKind::Integer(low, high) => value
            .as_i64()
            .filter(|number| (low..=high).contains(number))
            .map(|_| ())
            .ok_or_else(|| format!("must be a whole number from {low} to {high}")),
        ParamKind::Seconds => value
            .as_f64()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0 && *seconds <= 86_400.0)
            .map(|_| ())
            .ok_or_else(|| "must be a number of seconds from 0 to 86400".to_owned()),
        ParamKind::OneOf(words) => value
            .as_str()
            .filter(|word| words.contains(word))
            .map(|_| ())
            .ok_or_else(|| format!("must be one of {}", words.join(", "))),
        ParamKind::Text => value
            .as_str()
            .filter(|text| !text.trim().is_empty() && text.chars().count() <= 200)
            .map(|_| ())
            .ok_or_else(|| "must be text of 1 to 200 characters".to_owned()),
        ParamKind::FileIds => value
            .as_array()
            .filter(|ids| {
                (1..=MAX_JOINED).contains(&ids.len())
                    && ids.iter().all(|id| {
                        id.as_str()
                            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
                    })
            })
            .map(|_| ())
            .ok_or_else(|| format!("must be a list of 1 to {MAX_JOINED} file ids")),
    };
    fits.map_err(|message| QueueError::invalid(&field, message))
}

pub fn priority(priority: i32) -> Result<i16, QueueError> {
    if priority == 0 {
        return Ok(DEFAULT_PRIORITY);
    }
    i16::try_from(priority)
        .ok()
        .filter(|priority| PRIORITIES.contains(priority))
        .ok_or_else(|| QueueError::invalid("priority", "must be 1 (first) to 20 (last)"))
}

/// Where the job reads its input from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A stored file, which must be the caller's (the service checks).
    File(uuid::Uuid),
    Url(url::Url),
}

/// The job's input: a stored file, or an `input_url` the service may fetch. `allow_private`
/// lets it name loopback and private addresses (local development); otherwise they are
/// refused, since the fetch runs inside the platform's network.
pub fn input(
    input_file_id: &str,
    input_url: &str,
    allow_private: bool,
) -> Result<Input, QueueError> {
    match (input_file_id.trim(), input_url.trim()) {
        ("", "") => Err(QueueError::missing("input_file_id or input_url")),
        (id, "") => uuid::Uuid::parse_str(id)
            .map(Input::File)
            .map_err(|_| QueueError::invalid("input_file_id", "must be a UUID")),
        ("", url) => public_url(url, allow_private).map(Input::Url),
        _ => Err(QueueError::invalid(
            "input_url",
            "give either input_file_id or input_url, not both",
        )),
    }
}

/// An http(s) URL without credentials, naming no loopback, private or internal host unless
/// `allow_private`; checked at enqueue and again on every redirect the fetch follows.
pub fn public_url(text: &str, allow_private: bool) -> Result<url::Url, QueueError> {
    let invalid = |message: &str| QueueError::invalid("input_url", message.to_owned());
    if text.len() > 2048 {
        return Err(invalid("must be at most 2048 bytes"));
    }
    let url = url::Url::parse(text).map_err(|err| invalid(&format!("not a URL: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry credentials"));
    }
    let private = match url.host() {
        None => return Err(invalid("must name a host")),
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(domain)) => is_internal_name(domain),
    };
    if private && !allow_private {
        return Err(invalid(
            "names a loopback or private address, which this server does not fetch from",
        ));
    }
    Ok(url)
}

/// Names that resolve inside a network rather than on the internet: single labels (a cluster's
/// services: `postgres`, `svc-usage`), and the suffixes of local, cluster and home networks.
fn is_internal_name(domain: &str) -> bool {
    const SUFFIXES: [&str; 7] = [
        ".localhost",
        ".local",
        ".internal",
        ".svc",
        ".cluster.local",
        ".home.arpa",
        ".lan",
    ];
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    !domain.contains('.')
        || SUFFIXES.iter().any(|suffix| domain.ends_with(suffix))
        || domain == "home.arpa"
}

/// Loopback, private, link-local, unspecified and other non-public addresses, which a
/// server-side fetch must not reach (the fetcher checks every address it connects to again).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && ip.octets()[2] == 0)
                || a >= 224
        }
        IpAddr::V6(ip) => {
            if ip.is_loopback() || ip.is_unspecified() {
                return true;
            }
            // IPv4-mapped and -compatible addresses, NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
            // carry an IPv4 address that is what the connection reaches.
            let segments = ip.segments();
            let octets = ip.octets();
            let embedded = if let Some(v4) = ip.to_ipv4() {
                Some(v4)
            } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                Some(std::net::Ipv4Addr::new(
                    octets[12], octets[13], octets[14], octets[15],
                ))
            } else if segments[0] == 0x2002 {
                Some(std::net::Ipv4Addr::new(
                    octets[2], octets[3], octets[4], octets[5],
                ))
            } else {
                None
            };
            if let Some(v4) = embedded {
                return is_private(IpAddr::V4(v4));
            }
            let first = segments[0];
            ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || segments[..2] == [0x64, 0xff9b]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Capabilities = Capabilities { video: true };

    fn field(err: QueueError) -> String {
        common::ApiError::from(err).field.unwrap_or_default()
    }

    #[test]
    fn every_operation_of_the_design_is_known_and_nothing_else() {
        let names: Vec<&str> = OPERATIONS.iter().map(|op| op.name).collect();
        assert_eq!(
            names,
            [
                "convert_image",
                "resize_image",
                "crop_image",
                "apply_watermark",
                "strip_metadata",
                "create_teaser",
                "resize_video",
                "crop_video",
                "compress_video",
                "trim_video",
                "join_videos"
            ]
        );
        assert_eq!(field(operation("sharpen", ALL).err().unwrap()), "operation");
    }

    #[test]
    fn video_without_ffmpeg_is_unsupported_not_unknown() {
        let err = operation("trim_video", Capabilities { video: false })
            .err()
            .unwrap();
        let api = common::ApiError::from(err);
        assert_eq!(
            (api.reason.as_ref(), api.field.as_deref()),
            ("unsupported_operation", Some("operation"))
        );
        assert!(operation("resize_image", Capabilities { video: false }).is_ok());
    }

    #[test]
    fn parameters_are_checked_by_name_and_kind() {
        let resize = operation("resize_image", ALL).unwrap();
        assert_eq!(params(resize, r#"{"width": 640}"#).unwrap()["width"], 640);
        assert_eq!(
            field(params(resize, "{}").unwrap_err()),
            "params.width or params.height"
        );
        assert_eq!(
            field(params(resize, r#"{"width": 0}"#).unwrap_err()),
            "params.width"
        );
        assert_eq!(
            field(params(resize, r#"{"width": "640"}"#).unwrap_err()),
            "params.width"
        );
        assert_eq!(
            field(params(resize, r#"{"depth": 3}"#).unwrap_err()),
            "params.depth"
        );
        assert_eq!(field(params(resize, "[1]").unwrap_err()), "params");
        assert_eq!(field(params(resize, "{").unwrap_err()), "params");
        assert_eq!(
            field(params(resize, r#"{"width": null}"#).unwrap_err()),
            "params.width or params.height"
        );
        assert_eq!(
            params(resize, r#"{"width": 5, "height": null}"#).unwrap(),
            params(resize, r#"{"width": 5}"#).unwrap()
        );
        let crop = operation("crop_image", ALL).unwrap();
        assert_eq!(
            field(params(crop, r#"{"x": 0, "y": 0, "width": 5}"#).unwrap_err()),
            "params.height"
        );
        let convert = operation("convert_image", ALL).unwrap();
        assert_eq!(
            field(params(convert, r#"{"format": "svg"}"#).unwrap_err()),
            "params.format"
        );
        let join = operation("join_videos", ALL).unwrap();
        let id = uuid::Uuid::new_v4().to_string();
        assert!(params(join, &format!(r#"{{"files": ["{id}"]}}"#)).is_ok());
        for bad in [
            r#"{"files": []}"#,
            r#"{"files": ["x"]}"#,
            r#"{"files": "a"}"#,
            "{}",
        ] {
            assert_eq!(
                field(params(join, bad).unwrap_err()),
                "params.files",
                "{bad}"
            );
        }
        let strip = operation("strip_metadata", ALL).unwrap();
        assert!(params(strip, "").unwrap().is_empty());
        let trim = operation("trim_video", ALL).unwrap();
        assert!(params(trim, r#"{"start": 1.5, "duration": 3}"#).is_ok());
        assert_eq!(
            field(params(trim, r#"{"start": -1, "duration": 3}"#).unwrap_err()),
            "params.start"
        );
    }

    #[test]
    fn priorities_default_to_ten_and_stay_in_range() {
        assert_eq!(priority(0).unwrap(), 10);
        assert_eq!(priority(1).unwrap(), 1);
        assert_eq!(priority(20).unwrap(), 20);
        assert_eq!(field(priority(21).unwrap_err()), "priority");
        assert_eq!(field(priority(-1).unwrap_err()), "priority");
    }

    #[test]
    fn input_urls_are_public_http_unless_allowed() {
        assert!(input("", "https://cdn.example.com/a.png", false).is_ok());
        for url in [
            "http://127.0.0.1/a.png",
            "http://10.1.2.3/a.png",
            "http://192.168.0.10/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            "http://localhost:8080/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::10.0.0.1]/",
            "http://[2002:c0a8:0101::]/",
            "http://[fec0::1]/",
            "http://198.18.0.1/",
            "http://postgres:5432/",
            "http://svc-usage.genie.svc.cluster.local/",
            "http://printer.local/",
            "http://kubernetes.default.svc/",
        ] {
            assert_eq!(
                field(input("", url, false).unwrap_err()),
                "input_url",
                "{url}"
            );
            assert!(input("", url, true).is_ok(), "{url}");
        }
        for url in [
            "ftp://example.com/a",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert_eq!(
                field(input("", url, false).unwrap_err()),
                "input_url",
                "{url}"
            );
        }
        assert_eq!(
            field(input("", "", false).unwrap_err()),
            "input_file_id or input_url"
        );
        assert_eq!(
            field(input("0b7c", "", false).unwrap_err()),
            "input_file_id"
        );
        let id = uuid::Uuid::new_v4();
        assert_eq!(input(&id.to_string(), "", false).unwrap(), Input::File(id));
        assert_eq!(
            field(input("0b7c", "https://example.com/a", false).unwrap_err()),
            "input_url"
        );
    }
}
