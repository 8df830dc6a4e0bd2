//! Files the queue keeps: what type of media bytes are, whatever the client said they were.

/// The media type of `bytes`, read from their first bytes; `None` for anything this service
/// does not keep.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    use image::ImageFormat;
    if let Ok(format) = image::guess_format(bytes) {
        return match format {
            ImageFormat::Png => Some("image/png"),
            ImageFormat::Jpeg => Some("image/jpeg"),
            ImageFormat::WebP => Some("image/webp"),
            ImageFormat::Gif => Some("image/gif"),
            ImageFormat::Bmp => Some("image/bmp"),
            ImageFormat::Tiff => Some("image/tiff"),
            _ => None,
        };
    }
    // ISO base media files (MP4, QuickTime) open with an `ftyp` box naming their brand; HEIF and
    // AVIF images share the box and are not video.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"qt  " => Some("video/quicktime"),
            b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis" => None,
            _ => Some("video/mp4"),
        };
    }
    // Matroska and WebM open with an EBML header.
    if bytes.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
        return Some("video/webm");
    }
    None
}

/// Width and height of an image, read from its header.
pub fn dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// A client's file name, kept for display: control characters dropped, at most 255 characters.
pub fn display_name(filename: &str) -> Option<String> {
    let name: String = filename
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        let mut png = Vec::new();
        image::RgbImage::new(3, 2)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(sniff(&png), Some("image/png"));
        assert_eq!(dimensions(&png), Some((3, 2)));
        assert_eq!(
            sniff(b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2"),
            Some("video/mp4")
        );
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), None);
        assert_eq!(sniff(&[0x1a, 0x45, 0xdf, 0xa3, 1, 0]), Some("video/webm"));
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(dimensions(b"not an image"), None);
    }

    #[test]
    fn display_names_lose_control_characters() {
        assert_eq!(display_name(" a\r\nb.png ").as_deref(), Some("ab.png"));
        assert_eq!(display_name("\n\t"), None);
        assert_eq!(display_name(&"x".repeat(300)).unwrap().len(), 255);
    }
}
