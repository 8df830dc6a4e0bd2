//! The video operations of the media queue, run by ffmpeg on files in a scratch directory. Unlike
//! the image operations they are asynchronous: the work happens in child processes, which end
//! with the future that started them.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Map, Value};
use tokio::process::Command;

use crate::media::{MediaError, Output};

type Params = Map<String, Value>;

/// What a video job may read and write.
#[derive(Debug, Clone, Copy)]
pub struct VideoLimits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_duration_seconds: f64,
}

impl Default for VideoLimits {
    fn default() -> Self {
        Self {
            max_width: 3840,
            max_height: 2160,
            max_duration_seconds: 600.0,
        }
    }
}

impl VideoLimits {
    /// Long side against long side and short against short: a phone's portrait 2160×3840 is as
    /// much work as the landscape 3840×2160.
    fn fits(&self, width: u32, height: u32) -> bool {
        width.max(height) <= self.max_width.max(self.max_height)
            && width.min(height) <= self.max_width.min(self.max_height)
    }
}

const DEFAULT_CRF: u32 = 28;
/// x264's own default, for the operations that change the picture, not its quality.
const EDIT_CRF: u32 = 23;
/// An upload is untrusted: an HLS playlist or similar indirection named like a video would have
/// ffmpeg read other local files or URLs into the output, so inputs open only as plain files in
/// these containers (mov covers mp4 and 3gp, matroska covers webm).
const CONTAINERS: &str = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf";
/// The frame rate of a joined video when the first input states none.
const FALLBACK_FRAME_RATE: &str = "30/1";
/// Drops the odd last row or column of a frame, since H.264 in 4:2:0 takes even sides only.
const EVEN_FRAME: &str = "crop=trunc(iw/2)*2:trunc(ih/2)*2";
const OUTPUT: &str = "output.mp4";

/// The operation with its parameters, read before any file is written, so that a wrong request
/// costs no probe.
#[derive(Clone, Copy)]
enum Edit {
    Resize(Option<u32>, Option<u32>),
    Crop {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    Compress(u32),
    Trim {
        start: f64,
        duration: f64,
    },
    Join,
}

impl Edit {
    fn read(operation: &str, params: &Params) -> Result<Self, MediaError> {
        let whole = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_u64)
                .and_then(|number| u32::try_from(number).ok())
        };
        let given = |name: &str, least: u32| {
            whole(name).filter(|value| *value >= least).ok_or_else(|| {
                invalid(&format!("params.{name}"), "must be a whole number in range")
            })
        };
        let seconds = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_f64)
                .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                .ok_or_else(|| invalid(&format!("params.{name}"), "must be a number of seconds"))
        };
        Ok(match operation {
            "resize_video" => Self::Resize(
                whole("width").filter(|side| *side > 0),
                whole("height").filter(|side| *side > 0),
            ),
            "crop_video" => Self::Crop {
                x: given("x", 0)?,
                y: given("y", 0)?,
                width: given("width", 1)?,
                height: given("height", 1)?,
            },
            "compress_video" => Self::Compress(match params.get("crf") {
                None => DEFAULT_CRF,
                Some(_) => whole("crf")
                    .filter(|crf| (18..=51).contains(crf))
                    .ok_or_else(|| invalid("params.crf", "must be a whole number from 18 to 51"))?,
            }),
            "trim_video" => {
                let (start, duration) = (seconds("start")?, seconds("duration")?);
                if duration <= 0.0 {
                    return Err(invalid("params.duration", "must be more than 0 seconds"));
                }
                Self::Trim { start, duration }
            }
            "join_videos" => Self::Join,
            _ => {
                let message = format!("{operation:?} is not a video operation");
                return Err(invalid("operation", message));
            }
        })
    }
}

/// Runs `operation` on `inputs` (the job's input first; for join_videos, the other files after
/// it) with ffmpeg in a scratch directory under `scratch` that is removed when done or dropped.
/// The ffmpeg/ffprobe child processes are killed if this future is dropped (a time limit or a
/// cancellation): every `tokio::process::Command` has `.kill_on_drop(true)`.
///
/// H.264 in 4:2:0 has even sides only, so a requested width or height (of a resize or a crop)
/// is rounded down to even, at least 2; the output's `width` and `height` are read from it.
pub async fn process(
    operation: &str,
    params: &Params,
    mut inputs: Vec<Vec<u8>>,
    limits: &VideoLimits,
    scratch: &Path,
) -> Result<Output, MediaError> {
    let edit = Edit::read(operation, params)?;
    match edit {
        Edit::Join if inputs.len() < 2 => {
            let message = "join_videos needs at least one other video in params.files";
            return Err(invalid("params.files", message));
        }
        Edit::Join => {}
        _ => inputs.truncate(1),
    }
    if inputs.is_empty() {
        return Err(MediaError::Unreadable("no input was given".to_owned()));
    }
    let dir = Scratch::new(scratch).await?;
    let mut probes = Vec::with_capacity(inputs.len());
    // Consumed one by one, so that each input's bytes are freed once on disk.
    for (index, bytes) in inputs.into_iter().enumerate() {
        let name = if index == 0 {
            "the input".to_owned()
        } else {
            format!("params.files[{}]", index - 1)
        };
        tokio::fs::write(dir.0.join(input(index)), bytes)
            .await
            .map_err(scratch_failed)?;
        let probe = probe(&dir.0, &input(index))
            .await
            .map_err(|err| match err {
                MediaError::Unreadable(message) if index > 0 => {
                    MediaError::Unreadable(format!("{name}: {message}"))
                }
                err => err,
            })?;
        if !limits.fits(probe.width, probe.height) || probe.duration > limits.max_duration_seconds {
            let what = format!(
                "{name} ({}×{}, {:.1} s)",
                probe.width, probe.height, probe.duration
            );
            return Err(too_large(&what, limits));
        }
        probes.push(probe);
    }
    let first = &probes[0];
    let mut ffmpeg = command("ffmpeg", &dir.0);
    ffmpeg.args(["-nostdin", "-y"]);
    let mut crf = EDIT_CRF;
    match edit {
        Edit::Trim { start, duration } => {
            if start >= first.duration {
                let message = format!(
                    "starts at {start} s, not before the end of the {:.2} s video",
                    first.duration
                );
                return Err(invalid("params.start", message));
            }
            // Before the input, a seek that the re-encoding makes frame-accurate.
            ffmpeg.arg("-ss").arg(start.to_string());
            ffmpeg.arg("-t").arg(duration.to_string());
        }
        Edit::Compress(given) => crf = given,
        _ => {}
    }
    for index in 0..probes.len() {
        ffmpeg.args([
            "-protocol_whitelist",
            "file",
            "-format_whitelist",
            CONTAINERS,
        ]);
        ffmpeg.arg("-i").arg(input(index));
    }
    match edit {
        Edit::Join => {
            let total: f64 = probes.iter().map(|probe| probe.duration).sum();
            if total > limits.max_duration_seconds {
                return Err(too_large(&format!("the joined {total:.1} s video"), limits));
            }
            let (graph, audio) = join(first, &probes);
            ffmpeg.args(["-filter_complex", &graph, "-map", "[v]"]);
            if audio {
                ffmpeg.args(["-map", "[a]"]);
            }
        }
        _ => {
            let filter = match edit {
                Edit::Resize(width, height) => resize(first, width, height, limits)?,
                Edit::Crop {
                    x,
                    y,
                    width,
                    height,
                } => crop(first, x, y, width, height)?,
                _ => EVEN_FRAME.to_owned(),
            };
            // The first video that is not cover art, and the first audio if there is one: other
            // streams (subtitles, data) may not fit in an MP4.
            ffmpeg.args(["-map", "0:V:0", "-map", "0:a:0?", "-vf", &filter]);
        }
    }
    ffmpeg.args([
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        &crf.to_string(),
    ]);
    // Like the image operations, the output keeps no metadata of its input (a phone's location).
    ffmpeg.args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-map_metadata", "-1"]);
    ffmpeg.args(["-movflags", "+faststart", OUTPUT]);
    run(ffmpeg).await?;
    let output = probe(&dir.0, OUTPUT).await.map_err(|err| match err {
        MediaError::Unreadable(message) => MediaError::Encode(message),
        err => err,
    })?;
    Ok(Output {
        bytes: tokio::fs::read(dir.0.join(OUTPUT))
            .await
            .map_err(scratch_failed)?,
        content_type: "video/mp4",
        extension: "mp4",
        width: output.width,
        height: output.height,
        duration_seconds: Some(output.duration),
    })
}

/// The job's directory, removed however the job ends, a dropped future included.
struct Scratch(PathBuf);

impl Scratch {
    async fn new(root: &Path) -> Result<Self, MediaError> {
        let dir = root.join(format!("genie-video-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(scratch_failed)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn input(index: usize) -> String {
    format!("input-{index}")
}

/// Files are named relative to `dir`, so that no message names a path of the server.
fn command(program: &str, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .args(["-hide_banner", "-loglevel", "error"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// The program's stdout; the last lines of its stderr when it fails.
async fn run(mut command: Command) -> Result<Vec<u8>, MediaError> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = command.output().await.map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => MediaError::Encode(format!("{program} is not installed")),
        _ => MediaError::Encode(format!("could not run {program}: {err}")),
    })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message: String = lines[lines.len().saturating_sub(2)..]
        .join(" ")
        .chars()
        .take(300)
        .collect();
    Err(MediaError::Unreadable(if message.is_empty() {
        format!("{program} failed ({})", output.status)
    } else {
        message
    }))
}

/// A video as ffprobe reads it, measured upright: a phone video stored sideways with a rotation
/// is decoded turned, so its width is the stored height.
struct Probe {
    width: u32,
    height: u32,
    duration: f64,
    /// As ffprobe states it ("30000/1001"), checked to be a ratio of whole numbers.
    frame_rate: Option<String>,
    audio: bool,
}

async fn probe(dir: &Path, file: &str) -> Result<Probe, MediaError> {
    let mut ffprobe = command("ffprobe", dir);
    ffprobe.args([
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        CONTAINERS,
    ]);
    ffprobe.args(["-of", "json", "-show_streams", "-show_format", file]);
    let json: Value = serde_json::from_slice(&run(ffprobe).await?)
        .map_err(|err| MediaError::Unreadable(format!("ffprobe wrote no JSON: {err}")))?;
    let streams = json["streams"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let unreadable = |message: &str| MediaError::Unreadable(message.to_owned());
    let video = streams
        .iter()
        .find(|stream| {
            stream["codec_type"] == "video" && stream["disposition"]["attached_pic"] != 1
        })
        .ok_or_else(|| unreadable("it has no video stream"))?;
    let side = |name: &str| {
        video[name]
            .as_u64()
            .and_then(|side| u32::try_from(side).ok())
            .filter(|side| *side > 0)
    };
    let (Some(width), Some(height)) = (side("width"), side("height")) else {
        return Err(unreadable("its video has no frame size"));
    };
    let rotation = video["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|data| data["rotation"].as_f64())
        .unwrap_or(0.0);
    let (width, height) = if (rotation.round() as i64).rem_euclid(180) == 90 {
        (height, width)
    } else {
        (width, height)
    };
    let seconds = |value: &Value| {
        value
            .as_str()
            .and_then(|text| text.parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
    };
    let duration = seconds(&json["format"]["duration"])
        .or_else(|| seconds(&video["duration"]))
        .ok_or_else(|| unreadable("its duration is unknown"))?;
    let frame_rate = ["avg_frame_rate", "r_frame_rate"]
        .into_iter()
        .find_map(|key| {
            let (frames, seconds) = video[key].as_str()?.split_once('/')?;
            let (frames, seconds) = (frames.parse::<u32>().ok()?, seconds.parse::<u32>().ok()?);
            (frames > 0 && seconds > 0).then(|| format!("{frames}/{seconds}"))
        });
    Ok(Probe {
        width,
        height,
        duration,
        frame_rate,
        audio: streams.iter().any(|stream| stream["codec_type"] == "audio"),
    })
}

/// Even, and at least 2.
fn even(side: u32) -> u32 {
    (side & !1).max(2)
}

/// `value`×`to`/`from`, rounded and at least 1.
fn scaled(value: u32, to: u32, from: u32) -> u32 {
    let exact = (u64::from(value) * u64::from(to) + u64::from(from) / 2) / u64::from(from.max(1));
    u32::try_from(exact).unwrap_or(u32::MAX).max(1)
}

/// Scales to cover the box and crops the overflow around the centre (sharp's `fit: cover`, as
/// the image resize does); one side alone keeps the aspect. Cropping first keeps the scaler from
/// building a frame larger than the output.
fn resize(
    probe: &Probe,
    width: Option<u32>,
    height: Option<u32>,
    limits: &VideoLimits,
) -> Result<String, MediaError> {
    let (source_width, source_height) = (probe.width, probe.height);
    let (width, height) = match (width.map(even), height.map(even)) {
        (Some(width), Some(height)) => (width, height),
        (Some(width), None) => (width, even(scaled(source_height, width, source_width))),
        (None, Some(height)) => (even(scaled(source_width, height, source_height)), height),
        (None, None) => {
            return Err(invalid(
                "params.width",
                "give params.width, params.height or both",
            ));
        }
    };
    if !limits.fits(width, height) {
        return Err(too_large(&format!("a {width}×{height} output"), limits));
    }
    let crop_width = scaled(source_height, width, height).min(source_width);
    let crop_height = scaled(source_width, height, width).min(source_height);
    Ok(format!(
        "crop={crop_width}:{crop_height},scale={width}:{height},setsar=1"
    ))
}

fn crop(probe: &Probe, x: u32, y: u32, width: u32, height: u32) -> Result<String, MediaError> {
    let (frame_width, frame_height) = (probe.width, probe.height);
    let outside = [
        (x >= frame_width, "params.x", "x is outside"),
        (y >= frame_height, "params.y", "y is outside"),
        (
            u64::from(x) + u64::from(width) > u64::from(frame_width),
            "params.width",
            "x + width passes the right edge of",
        ),
        (
            u64::from(y) + u64::from(height) > u64::from(frame_height),
            "params.height",
            "y + height passes the bottom of",
        ),
    ];
    if let Some((_, field, problem)) = outside.into_iter().find(|check| check.0) {
        let crop = format!("a {width}×{height} crop at ({x}, {y})");
        let message = format!("{problem} the {frame_width}×{frame_height} video ({crop})");
        return Err(invalid(field, message));
    }
    // A side of 1 grows to 2, so it moves inwards if it was at the edge.
    let (width, height) = (even(width), even(height));
    let x = x.min(frame_width.saturating_sub(width));
    let y = y.min(frame_height.saturating_sub(height));
    Ok(format!("crop={width}:{height}:{x}:{y}:exact=1"))
}

/// The filter graph joining every input at the first one's size and frame rate (concat takes
/// neither mixed sizes nor, without running away into a million frames a second, mixed rates),
/// and whether it carries audio: only when every input has some.
fn join(first: &Probe, probes: &[Probe]) -> (String, bool) {
    let (width, height) = (even(first.width), even(first.height));
    let rate = first.frame_rate.as_deref().unwrap_or(FALLBACK_FRAME_RATE);
    let audio = probes.iter().all(|probe| probe.audio);
    let mut chains = Vec::new();
    let mut segments = String::new();
    for index in 0..probes.len() {
        chains.push(format!(
            "[{index}:V:0]scale={width}:{height}:force_original_aspect_ratio=decrease:\
             force_divisible_by=2,pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate}[v{index}]"
        ));
        segments.push_str(&format!("[v{index}]"));
        if audio {
            chains.push(format!(
                "[{index}:a:0]aformat=sample_rates=48000:channel_layouts=stereo[a{index}]"
            ));
            segments.push_str(&format!("[a{index}]"));
        }
    }
    let (streams, outputs) = if audio { (1, "[v][a]") } else { (0, "[v]") };
    let count = probes.len();
    chains.push(format!(
        "{segments}concat=n={count}:v=1:a={streams}{outputs}"
    ));
    (chains.join(";"), audio)
}

fn too_large(what: &str, limits: &VideoLimits) -> MediaError {
    let (width, height) = (limits.max_width, limits.max_height);
    let seconds = limits.max_duration_seconds;
    MediaError::TooLarge(format!(
        "{what} is over the {width}×{height} pixels and {seconds} s a video job may use"
    ))
}

fn scratch_failed(err: std::io::Error) -> MediaError {
    MediaError::Encode(format!("the scratch directory failed: {err}"))
}

fn invalid(field: &str, message: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// The bytes ffmpeg writes with `args` before the output file.
    fn ffmpeg(args: &[&str]) -> Vec<u8> {
        let path =
            std::env::temp_dir().join(format!("genie-video-clip-{}.mp4", uuid::Uuid::new_v4()));
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
            .args(args)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        bytes
    }

    /// A test pattern `seconds` long, with a 440 Hz tone if `audio`.
    fn clip(video: &str, audio: bool, seconds: u32) -> Vec<u8> {
        let source = format!("testsrc={video}");
        let seconds = seconds.to_string();
        let mut args = vec!["-f", "lavfi", "-i", &source];
        if audio {
            args.extend(["-f", "lavfi", "-i", "sine=frequency=440", "-c:a", "aac"]);
        }
        args.extend(["-t", &seconds, "-c:v", "libx264", "-preset", "ultrafast"]);
        args.extend(["-pix_fmt", "yuv420p"]);
        ffmpeg(&args)
    }

    fn made(cell: &'static OnceLock<Vec<u8>>, make: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
        cell.get_or_init(make).clone()
    }

    /// 320×240 at 15 frames a second, 2 s, with audio.
    fn landscape() -> Vec<u8> {
        static CLIP: OnceLock<Vec<u8>> = OnceLock::new();
        made(&CLIP, || clip("size=320x240:rate=15", true, 2))
    }

    fn silent() -> Vec<u8> {
        static CLIP: OnceLock<Vec<u8>> = OnceLock::new();
        made(&CLIP, || clip("size=320x240:rate=15", false, 2))
    }

    /// 160×120 at 25 frames a second, 2 s, with audio: another size and rate to join.
    fn small() -> Vec<u8> {
        static CLIP: OnceLock<Vec<u8>> = OnceLock::new();
        made(&CLIP, || clip("size=160x120:rate=25", true, 2))
    }

    /// The landscape clip stored as it is, marked to be shown turned a quarter (a phone's way).
    fn sideways() -> Vec<u8> {
        let source =
            std::env::temp_dir().join(format!("genie-video-clip-{}.mp4", uuid::Uuid::new_v4()));
        std::fs::write(&source, landscape()).unwrap();
        let source_arg = source.to_str().unwrap();
        let bytes = ffmpeg(&["-i", source_arg, "-c", "copy", "-metadata:s:v", "rotate=90"]);
        std::fs::remove_file(&source).unwrap();
        bytes
    }

    /// A scratch root of the test's own, so that what is left in it is the test's doing.
    fn root() -> PathBuf {
        std::env::temp_dir().join(format!("genie-video-test-{}", uuid::Uuid::new_v4()))
    }

    /// Removes the root, which fails unless every scratch directory in it is gone.
    fn assert_cleaned(root: &Path) {
        let left: Vec<_> = std::fs::read_dir(root).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir(root).unwrap();
    }

    async fn run_within(
        limits: &VideoLimits,
        root: &Path,
        operation: &str,
        params: Value,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Output, MediaError> {
        process(operation, params.as_object().unwrap(), inputs, limits, root).await
    }

    async fn job(
        root: &Path,
        operation: &str,
        params: Value,
        inputs: Vec<Vec<u8>>,
    ) -> Result<Output, MediaError> {
        run_within(&VideoLimits::default(), root, operation, params, inputs).await
    }

    /// The output probed again: its size, duration and whether it has audio, checked against
    /// what it claims.
    async fn probed(output: &Output) -> ((u32, u32), f64, bool) {
        let dir = Scratch::new(&std::env::temp_dir()).await.unwrap();
        tokio::fs::write(dir.0.join("probed.mp4"), &output.bytes)
            .await
            .unwrap();
        let probe = probe(&dir.0, "probed.mp4").await.unwrap();
        assert_eq!(
            (output.content_type, output.extension),
            ("video/mp4", "mp4")
        );
        assert_eq!((output.width, output.height), (probe.width, probe.height));
        assert_eq!(output.duration_seconds, Some(probe.duration));
        assert!(output.bytes.windows(8).any(|window| window == b"ftypisom"));
        ((probe.width, probe.height), probe.duration, probe.audio)
    }

    fn field(result: Result<Output, MediaError>) -> String {
        match result {
            Err(MediaError::Invalid { field, .. }) => field,
            other => panic!("not Invalid: {other:?}"),
        }
    }

    fn too_large(result: Result<Output, MediaError>) -> bool {
        matches!(result, Err(MediaError::TooLarge(_)))
    }

    fn near(seconds: f64, expected: f64) -> bool {
        (seconds - expected).abs() <= 0.15
    }

    #[tokio::test]
    async fn resize_follows_the_aspect_or_covers_the_box_in_even_sides() {
        let root = root();
        for (params, size) in [
            (json!({"width": 160}), (160, 120)),
            (json!({"width": 100, "height": 100}), (100, 100)),
            (json!({"width": 101, "height": 75}), (100, 74)),
        ] {
            let output = job(&root, "resize_video", params, vec![landscape()])
                .await
                .unwrap();
            let (probed_size, duration, audio) = probed(&output).await;
            assert_eq!(probed_size, size);
            assert!(near(duration, 2.0) && audio, "{duration} {audio}");
        }
        assert!(too_large(
            job(
                &root,
                "resize_video",
                json!({"width": 5000}),
                vec![landscape()]
            )
            .await
        ));
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn a_video_shown_turned_is_measured_as_shown() {
        let root = root();
        let output = job(
            &root,
            "resize_video",
            json!({"width": 120}),
            vec![sideways()],
        )
        .await
        .unwrap();
        assert_eq!(probed(&output).await.0, (120, 160));
        let crop = json!({"x": 250, "y": 0, "width": 10, "height": 10});
        assert_eq!(
            field(job(&root, "crop_video", crop, vec![sideways()]).await),
            "params.x"
        );
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn crop_takes_the_region_in_even_sides_and_refuses_one_outside() {
        let root = root();
        let crop = |x: u32, y: u32, width: u32, height: u32| {
            let params = json!({"x": x, "y": y, "width": width, "height": height});
            job(&root, "crop_video", params, vec![landscape()])
        };
        let output = crop(10, 20, 101, 61).await.unwrap();
        assert_eq!(probed(&output).await.0, (100, 60));
        let output = crop(319, 239, 1, 1).await.unwrap();
        assert_eq!(probed(&output).await.0, (2, 2));
        for ((x, y, width, height), expected) in [
            ((320, 0, 1, 1), "params.x"),
            ((0, 240, 1, 1), "params.y"),
            ((300, 0, 30, 10), "params.width"),
            ((0, 200, 10, 50), "params.height"),
        ] {
            let result = crop(x, y, width, height).await;
            if let Err(MediaError::Invalid { message, .. }) = &result {
                assert!(message.contains("320×240"), "{message}");
            }
            assert_eq!(field(result), expected);
        }
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn compress_keeps_the_size_in_fewer_bytes() {
        let root = root();
        let input = landscape();
        let output = job(
            &root,
            "compress_video",
            json!({"crf": 40}),
            vec![input.clone()],
        )
        .await
        .unwrap();
        let (size, duration, audio) = probed(&output).await;
        assert_eq!(size, (320, 240));
        assert!(near(duration, 2.0) && audio, "{duration} {audio}");
        assert!(
            output.bytes.len() < input.len(),
            "{} vs {}",
            output.bytes.len(),
            input.len()
        );
        let output = job(&root, "compress_video", json!({}), vec![silent()])
            .await
            .unwrap();
        assert!(!probed(&output).await.2);
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn trim_cuts_at_the_second_and_stops_at_the_end() {
        let root = root();
        let trim = |start: f64, duration: f64| {
            let params = json!({"start": start, "duration": duration});
            job(&root, "trim_video", params, vec![landscape()])
        };
        let (size, duration, audio) = probed(&trim(0.5, 1.0).await.unwrap()).await;
        assert!(
            size == (320, 240) && near(duration, 1.0) && audio,
            "{size:?} {duration}"
        );
        let (_, duration, _) = probed(&trim(1.5, 5.0).await.unwrap()).await;
        assert!(near(duration, 0.5), "{duration}");
        assert_eq!(field(trim(5.0, 1.0).await), "params.start");
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn join_appends_at_the_first_size_with_audio_only_if_all_have_it() {
        let root = root();
        let output = job(&root, "join_videos", json!({}), vec![landscape(), small()])
            .await
            .unwrap();
        let (size, duration, audio) = probed(&output).await;
        assert!(
            size == (320, 240) && near(duration, 4.0) && audio,
            "{size:?} {duration}"
        );
        let output = job(&root, "join_videos", json!({}), vec![small(), silent()])
            .await
            .unwrap();
        let (size, duration, audio) = probed(&output).await;
        assert!(
            size == (160, 120) && near(duration, 4.0) && !audio,
            "{size:?} {duration}"
        );
        let short = VideoLimits {
            max_duration_seconds: 3.0,
            ..VideoLimits::default()
        };
        let inputs = vec![landscape(), landscape()];
        assert!(too_large(
            run_within(&short, &root, "join_videos", json!({}), inputs).await
        ));
        assert_cleaned(&root);
    }

    #[tokio::test]
    async fn requests_that_cannot_fit_are_refused_before_any_work() {
        let root = root();
        for (operation, params, expected) in [
            ("sharpen", json!({}), "operation"),
            ("resize_image", json!({"width": 10}), "operation"),
            ("join_videos", json!({}), "params.files"),
            ("compress_video", json!({"crf": 60}), "params.crf"),
            (
                "trim_video",
                json!({"start": 0, "duration": 0}),
                "params.duration",
            ),
            ("trim_video", json!({"duration": 1}), "params.start"),
            (
                "crop_video",
                json!({"x": 0, "y": 0, "width": 0, "height": 5}),
                "params.width",
            ),
        ] {
            let inputs = vec![b"never read".to_vec()];
            let result = job(&root, operation, params, inputs).await;
            assert_eq!(field(result), expected, "{operation}");
        }
        assert!(!root.exists());
    }

    #[tokio::test]
    async fn what_is_not_a_video_or_over_the_limits_is_refused_and_leaves_nothing() {
        let root = root();
        let garbage = job(
            &root,
            "compress_video",
            json!({}),
            vec![b"certainly not a video".to_vec()],
        )
        .await;
        assert!(
            matches!(garbage, Err(MediaError::Unreadable(_))),
            "{garbage:?}"
        );
        // A playlist would have ffmpeg read another file of this machine into the output.
        let playlist =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n/etc/hostname\n#EXT-X-ENDLIST\n";
        let read = job(&root, "compress_video", json!({}), vec![playlist.to_vec()]).await;
        assert!(matches!(read, Err(MediaError::Unreadable(_))), "{read:?}");
        let tone = ffmpeg(&["-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac"]);
        let tone = job(&root, "compress_video", json!({}), vec![tone]).await;
        assert!(
            matches!(&tone, Err(MediaError::Unreadable(message)) if message.contains("no video")),
            "{tone:?}"
        );
        let joined = job(
            &root,
            "join_videos",
            json!({}),
            vec![landscape(), b"nope".to_vec()],
        )
        .await;
        assert!(
            matches!(&joined, Err(MediaError::Unreadable(message)) if message.starts_with("params.files[0]")),
            "{joined:?}"
        );
        let (width, duration) = (200, 1.0);
        for limits in [
            VideoLimits {
                max_width: width,
                ..VideoLimits::default()
            },
            VideoLimits {
                max_duration_seconds: duration,
                ..VideoLimits::default()
            },
        ] {
            let result = run_within(
                &limits,
                &root,
                "compress_video",
                json!({}),
                vec![landscape()],
            );
            assert!(too_large(result.await));
        }
        assert_cleaned(&root);
        let missing = run(command("genie-no-such-ffmpeg", &std::env::temp_dir())).await;
        assert!(
            matches!(&missing, Err(MediaError::Encode(message)) if message == "genie-no-such-ffmpeg is not installed"),
            "{missing:?}"
        );
        let limits = VideoLimits::default();
        assert!(limits.fits(3840, 2160) && limits.fits(2160, 3840));
        assert!(!limits.fits(3841, 2160) && !limits.fits(2160, 3841) && !limits.fits(2200, 2200));
    }

    /// Whether an ffmpeg runs in a scratch directory under `root` (as its working directory,
    /// deleted or not: the files it names are relative to it).
    fn ffmpeg_in(root: &Path) -> bool {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .any(|process| {
                let path = process.path();
                std::fs::read(path.join("cmdline"))
                    .is_ok_and(|cmdline| cmdline.starts_with(b"ffmpeg\0"))
                    && std::fs::read_link(path.join("cwd")).is_ok_and(|cwd| cwd.starts_with(root))
            })
    }

    #[tokio::test]
    async fn dropping_the_future_kills_ffmpeg_and_removes_its_files() {
        let root = root();
        // Quick to make, slow to scale up: ffmpeg outlasts the check below unless killed.
        let small = clip("size=160x90:rate=25", false, 10);
        let task = tokio::spawn({
            let root = root.clone();
            async move {
                let (params, limits) = (json!({"width": 1920}), VideoLimits::default());
                let params = params.as_object().unwrap();
                process("resize_video", params, vec![small], &limits, &root).await
            }
        });
        let started = Instant::now();
        // Once it writes its output, ffmpeg no longer needs the directory, so only a kill stops it.
        let writing = || {
            let mut dirs = std::fs::read_dir(&root).into_iter().flatten().flatten();
            dirs.any(|dir| dir.path().join(OUTPUT).exists()) && ffmpeg_in(&root)
        };
        while !writing() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "ffmpeg never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        let aborted = Instant::now();
        while ffmpeg_in(&root) {
            assert!(
                aborted.elapsed() < Duration::from_secs(1),
                "ffmpeg outlived its job"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_cleaned(&root);
    }
}
