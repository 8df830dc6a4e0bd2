//! The image operations of the media queue, on bytes in memory. Synchronous and CPU-bound, so
//! the caller runs them on a blocking thread; they touch no file, network or global state.

use std::borrow::Cow;
use std::io::Cursor;

use font8x8::{BASIC_FONTS, LATIN_FONTS, UnicodeFonts};
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{
    ColorType, DynamicImage, GenericImageView, ImageDecoder, ImageError, ImageFormat, ImageReader,
    Rgba,
};
use serde_json::{Map, Value};

/// What an image job may decode: bounds on a decompression bomb.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_width: 12_000,
            max_height: 12_000,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub extension: &'static str,
    pub width: u32,
    pub height: u32,
    /// Videos only.
    pub duration_seconds: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not an image in a format we read, or a corrupt one.
    #[error("the input is not a file this operation reads ({0})")]
    Unreadable(String),
    /// Over the limits.
    #[error("{0}")]
    TooLarge(String),
    /// Parameters that do not fit this image (a crop outside it). `field` like "params.x".
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Encoding failed.
    #[error("could not encode the output: {0}")]
    Encode(String),
}

type Params = Map<String, Value>;
type Transformed = Result<DynamicImage, MediaError>;
type Transform = fn(DynamicImage, &Params, &Limits) -> Transformed;

/// The formats written: the name a job gives, the format, its content type and file extension.
const FORMATS: [(&str, ImageFormat, &str, &str); 6] = [
    ("png", ImageFormat::Png, "image/png", "png"),
    ("jpeg", ImageFormat::Jpeg, "image/jpeg", "jpg"),
    ("webp", ImageFormat::WebP, "image/webp", "webp"),
    ("gif", ImageFormat::Gif, "image/gif", "gif"),
    ("bmp", ImageFormat::Bmp, "image/bmp", "bmp"),
    ("tiff", ImageFormat::Tiff, "image/tiff", "tiff"),
];
const JPEG_QUALITY: u8 = 90;
/// A teaser is blurred anyway, so fewer bytes matter more than detail.
const TEASER_QUALITY: u8 = 80;
const TEASER_LONGEST_SIDE: u32 = 640;

/// Runs `operation` with its (already shape-checked) `params` on `input`.
pub fn process(
    operation: &str,
    params: &Params,
    input: &[u8],
    limits: &Limits,
) -> Result<Output, MediaError> {
    // Settled before decoding, so a wrong request costs no decode.
    let (transform, target, quality): (Transform, _, _) = match operation {
        "convert_image" => (unchanged, Some(target_format(params)?), JPEG_QUALITY),
        "resize_image" => (resize, None, JPEG_QUALITY),
        "crop_image" => (crop, None, JPEG_QUALITY),
        "apply_watermark" => (watermark, None, JPEG_QUALITY),
        // Re-encoding copies no metadata, which is all stripping needs.
        "strip_metadata" => (unchanged, None, JPEG_QUALITY),
        "create_teaser" => (teaser, Some(ImageFormat::Jpeg), TEASER_QUALITY),
        _ => {
            let message = format!("{operation:?} is not an image operation");
            return Err(invalid("operation", message));
        }
    };
    let (image, format) = decode(input, limits)?;
    encode(
        &transform(image, params, limits)?,
        target.unwrap_or(format),
        quality,
    )
}

/// Decodes under `limits`, upright: a phone photo stored sideways with an EXIF orientation
/// would otherwise come out sideways once re-encoding drops that tag.
fn decode(input: &[u8], limits: &Limits) -> Result<(DynamicImage, ImageFormat), MediaError> {
    let mut reader = ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .map_err(|err| MediaError::Unreadable(err.to_string()))?;
    let format = reader
        .format()
        .ok_or_else(|| MediaError::Unreadable("no image format recognised".to_owned()))?;
    let mut budget = image::Limits::default();
    budget.max_image_width = Some(limits.max_width);
    budget.max_image_height = Some(limits.max_height);
    budget.max_alloc = Some(limits.max_alloc);
    reader.limits(budget.clone());
    let failed = |err: ImageError| match err {
        ImageError::Limits(err) => too_large(&format!("the image ({err})"), limits),
        err => MediaError::Unreadable(err.to_string()),
    };
    let mut decoder = reader.into_decoder().map_err(failed)?;
    // `into_decoder` checks the dimensions but, unlike `ImageReader::decode`, not the pixels' size.
    budget.reserve(decoder.total_bytes()).map_err(failed)?;
    // A broken EXIF block is no reason to refuse pixels that decode.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(failed)?;
    image.apply_orientation(orientation);
    Ok((image, format))
}

fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    jpeg_quality: u8,
) -> Result<Output, MediaError> {
    // Formats read but not written (none with today's features) fall back to PNG.
    let &(_, format, content_type, extension) = FORMATS
        .iter()
        .find(|entry| entry.1 == format)
        .unwrap_or(&FORMATS[0]);
    let pixels = encodable(image, format);
    let mut bytes = Cursor::new(Vec::new());
    let written = match format {
        ImageFormat::Jpeg => {
            pixels.write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, jpeg_quality))
        }
        // The default speed 1 ("quality at any cost") takes minutes on a large image.
        ImageFormat::Gif => pixels.write_with_encoder(GifEncoder::new_with_speed(&mut bytes, 10)),
        _ => pixels.write_to(&mut bytes, format),
    };
    written.map_err(|err| MediaError::Encode(err.to_string()))?;
    Ok(Output {
        bytes: bytes.into_inner(),
        content_type,
        extension,
        width: image.width(),
        height: image.height(),
        duration_seconds: None,
    })
}

/// The pixels in a layout the encoder takes, converted only where it would refuse them: the
/// JPEG, WebP and BMP encoders convert for themselves, the GIF, PNG and TIFF ones do not.
fn encodable(image: &DynamicImage, format: ImageFormat) -> Cow<'_, DynamicImage> {
    let color = image.color();
    let taken = match format {
        ImageFormat::Gif => matches!(color, ColorType::Rgb8 | ColorType::Rgba8),
        ImageFormat::Png => !matches!(color, ColorType::Rgb32F | ColorType::Rgba32F),
        ImageFormat::Tiff => !matches!(color, ColorType::La8 | ColorType::La16),
        _ => true,
    };
    match (taken, color.has_alpha()) {
        (true, _) => Cow::Borrowed(image),
        (false, true) => Cow::Owned(image.to_rgba8().into()),
        (false, false) => Cow::Owned(image.to_rgb8().into()),
    }
}

fn too_large(what: &str, limits: &Limits) -> MediaError {
    let (width, height, mib) = (limits.max_width, limits.max_height, limits.max_alloc >> 20);
    MediaError::TooLarge(format!(
        "{what} is over the {width}×{height} pixels and {mib} MiB an image job may use"
    ))
}

fn invalid(field: &str, message: impl Into<String>) -> MediaError {
    MediaError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn number(params: &Params, name: &str) -> Option<u32> {
    params
        .get(name)
        .and_then(Value::as_u64)
        .and_then(|number| u32::try_from(number).ok())
}

fn target_format(params: &Params) -> Result<ImageFormat, MediaError> {
    let name = params.get("format").and_then(Value::as_str);
    FORMATS
        .iter()
        .find(|entry| Some(entry.0) == name)
        .map(|entry| entry.1)
        .ok_or_else(|| {
            invalid(
                "params.format",
                "must be one of png, jpeg, webp, gif, bmp, tiff",
            )
        })
}

fn unchanged(image: DynamicImage, _: &Params, _: &Limits) -> Transformed {
    Ok(image)
}

/// `value`×`to`/`from`, rounded and at least 1, so that a side never vanishes.
fn scaled(value: u32, to: u32, from: u32) -> u32 {
    let exact = (u64::from(value) * u64::from(to) + u64::from(from) / 2) / u64::from(from.max(1));
    u32::try_from(exact).unwrap_or(u32::MAX).max(1)
}

/// The size a job asked for, a missing side following the image's aspect; None for neither.
fn requested_size(params: &Params, (width, height): (u32, u32)) -> Option<(u32, u32)> {
    let side = |name| number(params, name).filter(|side| *side > 0);
    match (side("width"), side("height")) {
        (Some(new_width), Some(new_height)) => Some((new_width, new_height)),
        (Some(new_width), None) => Some((new_width, scaled(height, new_width, width))),
        (None, Some(new_height)) => Some((scaled(width, new_height, height), new_height)),
        (None, None) => None,
    }
}

/// Scales to cover `width`×`height` and crops the overflow around the centre (sharp's
/// `fit: cover`). Cropping first keeps the scaler from building a frame larger than the output.
fn cover(image: &DynamicImage, width: u32, height: u32, limits: &Limits) -> Transformed {
    let (source_width, source_height) = image.dimensions();
    // The largest centred window of the output's aspect: one side whole, the other cut.
    let crop_width = scaled(source_height, width, height).min(source_width);
    let crop_height = scaled(source_width, height, width).min(source_height);
    // The scaler's intermediate frame is the cropped width at the new height, 16 bytes a pixel.
    let bytes = u64::from(width) * u64::from(height) * u64::from(image.color().bytes_per_pixel())
        + u64::from(crop_width) * u64::from(height) * 16;
    if width > limits.max_width || height > limits.max_height || bytes > limits.max_alloc {
        return Err(too_large(&format!("a {width}×{height} output"), limits));
    }
    let cropped = if (crop_width, crop_height) == (source_width, source_height) {
        Cow::Borrowed(image)
    } else {
        let (x, y) = (
            (source_width - crop_width) / 2,
            (source_height - crop_height) / 2,
        );
        Cow::Owned(image.crop_imm(x, y, crop_width, crop_height))
    };
    Ok(cropped.resize_exact(width, height, FilterType::Lanczos3))
}

fn resize(image: DynamicImage, params: &Params, limits: &Limits) -> Transformed {
    let (width, height) = requested_size(params, image.dimensions())
        .ok_or_else(|| invalid("params.width", "give params.width, params.height or both"))?;
    cover(&image, width, height, limits)
}

fn crop(image: DynamicImage, params: &Params, _: &Limits) -> Transformed {
    let given = |name: &str, least: u32| {
        number(params, name)
            .filter(|value| *value >= least)
            .ok_or_else(|| invalid(&format!("params.{name}"), "must be a whole number in range"))
    };
    let x = given("x", 0)?;
    let y = given("y", 0)?;
    let width = given("width", 1)?;
    let height = given("height", 1)?;
    let (image_width, image_height) = image.dimensions();
    let right = u64::from(x) + u64::from(width);
    let bottom = u64::from(y) + u64::from(height);
    let outside = [
        (x >= image_width, "params.x", "x is outside"),
        (y >= image_height, "params.y", "y is outside"),
        (
            right > u64::from(image_width),
            "params.width",
            "x + width passes the right edge of",
        ),
        (
            bottom > u64::from(image_height),
            "params.height",
            "y + height passes the bottom of",
        ),
    ];
    if let Some((_, field, problem)) = outside.into_iter().find(|check| check.0) {
        let crop = format!("a {width}×{height} crop at ({x}, {y})");
        let message = format!("{problem} the {image_width}×{image_height} image ({crop})");
        return Err(invalid(field, message));
    }
    Ok(image.crop_imm(x, y, width, height))
}

/// The 8×8 bitmap of `character` (rows top down, bit 0 leftmost), '?' where the font has none.
fn glyph(character: char) -> [u8; 8] {
    BASIC_FONTS
        .get(character)
        .or_else(|| LATIN_FONTS.get(character))
        .or_else(|| BASIC_FONTS.get('?'))
        .unwrap_or_default()
}

/// Whether the text has ink at (`column`, `row`), counted in font pixels.
fn inked(glyphs: &[[u8; 8]], column: u32, row: u32) -> bool {
    glyphs
        .get((column / 8) as usize)
        .and_then(|rows| rows.get(row as usize))
        .is_some_and(|bits| bits >> (column % 8) & 1 == 1)
}

/// Paints `colour` at `opacity` over the pixel ("over" compositing), so the watermark also shows
/// on transparent parts of the image.
fn blend(pixel: &mut Rgba<u8>, colour: [u8; 3], opacity: f32) {
    let below = f32::from(pixel[3]) / 255.0 * (1.0 - opacity);
    let alpha = opacity + below;
    for (channel, ink) in pixel.0.iter_mut().zip(colour) {
        *channel = ((f32::from(ink) * opacity + f32::from(*channel) * below) / alpha).round() as u8;
    }
    pixel[3] = (alpha * 255.0).round() as u8;
}

/// White text with a dark shadow one font pixel down and right, so it reads on light and dark
/// images alike; about a quarter of the image wide, clipped when even one scale is too wide.
fn watermark(image: DynamicImage, params: &Params, _: &Limits) -> Transformed {
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .ok_or_else(|| invalid("params.text", "must be text of 1 to 200 characters"))?;
    let position = params
        .get("position")
        .and_then(Value::as_str)
        .unwrap_or("bottom-right");
    let opacity = number(params, "opacity").unwrap_or(50).clamp(1, 100) as f32 / 100.0;
    let glyphs: Vec<[u8; 8]> = text.chars().map(glyph).collect();
    let mut canvas = image.into_rgba8();
    let (width, height) = canvas.dimensions();
    // In font pixels: 8 a character and 1 more for the shadow.
    let columns = u32::try_from(glyphs.len() * 8 + 1).unwrap_or(u32::MAX);
    let scale = (width / 4 / columns).max(1);
    let (box_width, box_height) = (columns.saturating_mul(scale), 9 * scale);
    let margin = (width.min(height) + 25) / 50;
    let left = match position {
        "top-left" | "bottom-left" => margin,
        "center" => width.saturating_sub(box_width) / 2,
        _ => width.saturating_sub(box_width.saturating_add(margin)),
    };
    let top = match position {
        "top-left" | "top-right" => margin,
        "center" => height.saturating_sub(box_height) / 2,
        _ => height.saturating_sub(box_height + margin),
    };
    for y in top..height.min(top + box_height) {
        for x in left..width.min(left.saturating_add(box_width)) {
            let (column, row) = ((x - left) / scale, (y - top) / scale);
            let colour = if inked(&glyphs, column, row) {
                [255, 255, 255]
            } else if column > 0 && row > 0 && inked(&glyphs, column - 1, row - 1) {
                [24, 24, 24]
            } else {
                continue;
            };
            blend(canvas.get_pixel_mut(x, y), colour, opacity);
        }
    }
    Ok(DynamicImage::ImageRgba8(canvas))
}

fn teaser(image: DynamicImage, params: &Params, limits: &Limits) -> Transformed {
    let (width, height) = image.dimensions();
    // Never up-scaled: an image within the bound keeps its size.
    let longest = width.max(height).max(TEASER_LONGEST_SIDE);
    let (width, height) = requested_size(params, (width, height)).unwrap_or((
        scaled(width, TEASER_LONGEST_SIDE, longest),
        scaled(height, TEASER_LONGEST_SIDE, longest),
    ));
    let teaser = cover(&image, width, height, limits)?;
    Ok(match number(params, "blur").unwrap_or(20) {
        0 => teaser,
        blur => teaser.fast_blur(blur as f32 / 2.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbaImage;
    use serde_json::json;

    fn run_within(
        limits: &Limits,
        operation: &str,
        params: Value,
        input: &[u8],
    ) -> Result<Output, MediaError> {
        process(operation, params.as_object().unwrap(), input, limits)
    }

    fn run(operation: &str, params: Value, input: &[u8]) -> Result<Output, MediaError> {
        run_within(&Limits::default(), operation, params, input)
    }

    fn gradient(width: u32, height: u32) -> RgbaImage {
        RgbaImage::from_fn(width, height, |x, y| {
            Rgba([(x * 2) as u8, (y * 3) as u8, 128, 255])
        })
    }

    fn encoded(image: &RgbaImage, format: ImageFormat) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(image.clone())
            .write_to(&mut bytes, format)
            .unwrap();
        bytes.into_inner()
    }

    fn decoded(output: &Output) -> DynamicImage {
        image::load_from_memory(&output.bytes).unwrap()
    }

    /// The format the bytes say they are, the one the output claims, and the decoded size.
    fn described(output: &Output) -> (ImageFormat, &'static str, &'static str, (u32, u32)) {
        let format = image::guess_format(&output.bytes).unwrap();
        assert_eq!((output.width, output.height), decoded(output).dimensions());
        (
            format,
            output.content_type,
            output.extension,
            decoded(output).dimensions(),
        )
    }

    fn field(result: Result<Output, MediaError>) -> String {
        match result {
            Err(MediaError::Invalid { field, .. }) => field,
            other => panic!("not Invalid: {:?}", other.map(|output| output.extension)),
        }
    }

    fn too_large(result: Result<Output, MediaError>) -> bool {
        matches!(result, Err(MediaError::TooLarge(_)))
    }

    #[test]
    fn resize_keeps_the_aspect_for_one_side_and_the_format() {
        let png = encoded(&gradient(120, 80), ImageFormat::Png);
        for (params, size) in [
            (json!({"width": 60}), (60, 40)),
            (json!({"height": 20}), (30, 20)),
            (json!({"width": 50, "height": 50}), (50, 50)),
        ] {
            let output = run("resize_image", params, &png).unwrap();
            assert_eq!(
                described(&output),
                (ImageFormat::Png, "image/png", "png", size)
            );
        }
        let jpeg = encoded(&gradient(120, 80), ImageFormat::Jpeg);
        let output = run("resize_image", json!({"width": 60}), &jpeg).unwrap();
        assert_eq!(
            described(&output),
            (ImageFormat::Jpeg, "image/jpeg", "jpg", (60, 40))
        );
        let narrow = Limits {
            max_width: 100,
            ..Limits::default()
        };
        assert!(too_large(run_within(
            &narrow,
            "resize_image",
            json!({"width": 200}),
            &png
        )));
    }

    #[test]
    fn crop_takes_the_region_and_refuses_one_outside() {
        let source = gradient(120, 80);
        let png = encoded(&source, ImageFormat::Png);
        let crop = |x: u32, y: u32, width: u32, height: u32| {
            run(
                "crop_image",
                json!({"x": x, "y": y, "width": width, "height": height}),
                &png,
            )
        };
        let cropped = decoded(&crop(10, 20, 30, 40).unwrap()).to_rgba8();
        assert_eq!(cropped.dimensions(), (30, 40));
        assert_eq!(cropped.get_pixel(0, 0), source.get_pixel(10, 20));
        assert_eq!(cropped.get_pixel(29, 39), source.get_pixel(39, 59));
        assert_eq!(field(crop(100, 0, 30, 10)), "params.width");
        assert_eq!(field(crop(120, 0, 1, 1)), "params.x");
        assert_eq!(field(crop(0, 80, 1, 1)), "params.y");
        assert_eq!(field(crop(0, 50, 10, 40)), "params.height");
    }

    #[test]
    fn convert_writes_every_format_at_the_same_size() {
        let png = encoded(&gradient(120, 80), ImageFormat::Png);
        for (name, format, content_type, extension) in FORMATS {
            let output = run("convert_image", json!({"format": name}), &png).unwrap();
            assert_eq!(
                described(&output),
                (format, content_type, extension, (120, 80))
            );
        }
    }

    #[test]
    fn watermark_marks_its_corner_only_and_more_at_higher_opacity() {
        let grey = RgbaImage::from_pixel(120, 80, Rgba([100, 100, 100, 255]));
        let png = encoded(&grey, ImageFormat::Png);
        let mark =
            |params: Value| decoded(&run("apply_watermark", params, &png).unwrap()).to_rgba8();
        let change = |marked: &RgbaImage, left: u32, top: u32| -> u32 {
            let quadrant = (left..left + 60).flat_map(|x| (top..top + 40).map(move |y| (x, y)));
            let channels = quadrant.flat_map(|(x, y)| {
                marked
                    .get_pixel(x, y)
                    .0
                    .into_iter()
                    .zip(grey.get_pixel(x, y).0)
            });
            channels
                .map(|(after, before)| u32::from(after.abs_diff(before)))
                .sum()
        };
        let strong = mark(json!({"text": "genie", "opacity": 100}));
        let faint = mark(json!({"text": "genie", "opacity": 10}));
        assert_eq!(strong.dimensions(), (120, 80));
        assert!(change(&strong, 60, 40) > change(&faint, 60, 40) && change(&faint, 60, 40) > 0);
        assert_eq!(change(&strong, 0, 0), 0);
        let top_left = mark(json!({"text": "genie", "position": "top-left"}));
        assert!(change(&top_left, 0, 0) > 0);
        assert_eq!(change(&top_left, 60, 40), 0);
        assert_eq!(mark(json!({"text": "✓"})), mark(json!({"text": "?"})));
    }

    /// `jpeg` with an APP1 segment holding `tiff` as its EXIF, right after the SOI marker.
    fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
        let payload = [b"Exif\0\0".as_slice(), tiff].concat();
        let length = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
        [&jpeg[..2], &[0xFF, 0xE1], &length, &payload, &jpeg[2..]].concat()
    }

    #[test]
    fn strip_metadata_drops_exif_and_keeps_the_image_upright() {
        let jpeg = encoded(&gradient(120, 80), ImageFormat::Jpeg);
        let tagged = with_exif(&jpeg, b"II*\0\x08\0\0\0\0\0");
        let has_exif = |bytes: &[u8]| bytes.windows(4).any(|window| window == b"Exif");
        assert!(has_exif(&tagged));
        let output = run("strip_metadata", json!({}), &tagged).unwrap();
        assert!(!has_exif(&output.bytes));
        assert_eq!(
            described(&output),
            (ImageFormat::Jpeg, "image/jpeg", "jpg", (120, 80))
        );
        // One IFD entry: tag 0x0112 (orientation), SHORT, count 1, value 6 (rotate 90°).
        let rotated = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0";
        let output = run("strip_metadata", json!({}), &with_exif(&jpeg, rotated)).unwrap();
        assert_eq!(described(&output).3, (80, 120));
    }

    #[test]
    fn teaser_is_a_small_blurred_jpeg() {
        let teaser =
            |params: Value, input: &[u8]| described(&run("create_teaser", params, input).unwrap());
        let large = encoded(&gradient(800, 400), ImageFormat::Png);
        assert_eq!(
            teaser(json!({}), &large),
            (ImageFormat::Jpeg, "image/jpeg", "jpg", (640, 320))
        );
        let small = encoded(&gradient(120, 80), ImageFormat::Png);
        assert_eq!(teaser(json!({}), &small).3, (120, 80));
        assert_eq!(
            teaser(json!({"width": 64, "height": 64}), &small).3,
            (64, 64)
        );
        let tiny = json!({"width": 1, "height": 3, "blur": 100});
        assert_eq!(teaser(tiny, &small).3, (1, 3));
        let checkers = RgbaImage::from_fn(160, 90, |x, y| {
            Rgba([if (x + y) % 2 == 0 { 0 } else { 255 }; 4])
        });
        let checkers = encoded(&checkers, ImageFormat::Png);
        // Neighbours along the rows (and one pair across each row's end, the same for both).
        let roughness = |blur: u32| -> u32 {
            let output = run("create_teaser", json!({"blur": blur}), &checkers).unwrap();
            let luma = decoded(&output).to_luma8().into_raw();
            luma.windows(2)
                .map(|pair| u32::from(pair[0].abs_diff(pair[1])))
                .sum()
        };
        assert!(
            roughness(40) * 10 < roughness(0),
            "{} vs {}",
            roughness(40),
            roughness(0)
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    #[test]
    fn garbage_is_unreadable_and_a_bomb_is_too_large_before_allocating() {
        let garbage = run("strip_metadata", json!({}), b"certainly not an image");
        assert!(
            matches!(garbage, Err(MediaError::Unreadable(_))),
            "{garbage:?}"
        );
        let mut bomb = encoded(&gradient(1, 1), ImageFormat::Png);
        // IHDR: length at 8, type at 12, width and height at 16 and 20, its CRC at 29.
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let started = std::time::Instant::now();
        assert!(too_large(run("resize_image", json!({"width": 10}), &bomb)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let png = encoded(&gradient(120, 80), ImageFormat::Png);
        let stingy = Limits {
            max_alloc: 1000,
            ..Limits::default()
        };
        assert!(too_large(run_within(
            &stingy,
            "strip_metadata",
            json!({}),
            &png
        )));
    }

    #[test]
    fn an_unknown_operation_is_invalid() {
        assert_eq!(field(run("sharpen", json!({}), b"")), "operation");
        assert_eq!(field(run("trim_video", json!({}), b"")), "operation");
    }
}
