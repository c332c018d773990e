//! Uploaded files: the rules that do not need the bytes' store — what a file's name may be when
//! it is shown or sent back, how a `content-disposition` is written so that no name can break
//! it, which content type the first bytes show, and which types an operator allows.
//!
//! A file's type is *sniffed* from its first bytes, never taken from what the client declared:
//! a declared `image/png` that is really HTML would otherwise be served back as whatever the
//! client claimed.

use std::fmt;

/// How many leading bytes [`sniff`] looks at: every signature `infer` knows sits well inside.
pub const SNIFF_BYTES: usize = 8192;

/// The longest name kept, in bytes (what most file systems allow for one path segment).
pub const MAX_NAME_BYTES: usize = 255;

/// The type of bytes nothing recognises and that are not text.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Where a file stands: a presigned upload is `Pending` until its completion step checked the
/// stored bytes; everything listed, read or downloaded is `Ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileStatus {
    /// Presigned, not completed yet: invisible to reads, swept when it expires.
    Pending,
    /// Stored and checked.
    Ready,
}

impl FileStatus {
    /// The storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
        }
    }

    /// The status stored as `raw`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "ready" => Some(Self::Ready),
            _ => None,
        }
    }
}

/// A client-sent file name made safe to show and to send back: only its last path segment
/// (`C:\Users\a\report.pdf` and `../../etc/passwd` lose their folders), no control or
/// bidirectional-override characters (which could disguise `exe.pdf` as `fdp.exe`), no
/// leading or trailing dots and spaces, at most [`MAX_NAME_BYTES`] bytes; `file` when nothing
/// is left. The name is only ever shown: objects are stored under ids, never under it.
pub fn sanitize_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| if c == '\t' { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c == ' ');
    let mut end = trimmed.len().min(MAX_NAME_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let name = trimmed[..end].trim_end_matches([' ', '.']);
    if name.is_empty() { "file".to_owned() } else { name.to_owned() }
}

/// Characters that reorder how text is displayed (RLO and friends).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `attachment; filename="…"; filename*=UTF-8''…` for `name` (RFC 6266 / RFC 8187): the quoted
/// form is an ASCII stand-in (anything else, quotes and backslashes become `_`) for old
/// clients, the starred form carries the exact name percent-encoded. No byte of the name can
/// end the header or add a parameter.
pub fn content_disposition(name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// The content type `head` (a file's first bytes, up to [`SNIFF_BYTES`]) shows: a known
/// signature (`image/png`, `application/pdf`, …), else `text/plain` for UTF-8 text without
/// control characters other than line breaks and tabs, else [`OCTET_STREAM`].
pub fn sniff(head: &[u8]) -> &'static str {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    if !head.is_empty() && looks_like_text(head) { "text/plain" } else { OCTET_STREAM }
}

fn looks_like_text(head: &[u8]) -> bool {
    // The head may end inside a multi-byte character: only the last three bytes may be cut.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(err) if err.error_len().is_none() && head.len() - err.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..err.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

/// Which sniffed types may be stored (`TENANTRY_UPLOAD_ALLOWED_TYPES`): exact types
/// (`image/png`), families (`image/*`), or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeAllowlist(Vec<String>);

/// The default allowlist: images, PDF, plain text and the common office and archive formats —
/// what a SaaS product's users attach, and nothing a browser would run (no HTML, no scripts).
pub const DEFAULT_ALLOWED_TYPES: &str = "image/png,image/jpeg,image/gif,image/webp,image/avif,application/pdf,\
text/plain,application/zip,application/gzip,application/msword,\
application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,\
application/vnd.openxmlformats-officedocument.presentationml.presentation,\
application/vnd.oasis.opendocument.text,application/vnd.oasis.opendocument.spreadsheet";

/// An entry of an allowlist that is not `type/subtype`, `type/*` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a media type such as image/png, image/* or *")]
pub struct InvalidMediaType(pub String);

impl TypeAllowlist {
    /// Parses a comma-separated list.
    ///
    /// # Errors
    /// [`InvalidMediaType`] naming the first bad entry.
    pub fn parse(raw: &str) -> Result<Self, InvalidMediaType> {
        let mut entries = Vec::new();
        for entry in raw.split(',').map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()) {
            let valid = entry == "*"
                || entry.split_once('/').is_some_and(|(kind, sub)| {
                    let token = |s: &str| {
                        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
                    };
                    token(kind) && (sub == "*" || token(sub))
                });
            if !valid {
                return Err(InvalidMediaType(entry));
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(InvalidMediaType(raw.to_owned()));
        }
        Ok(Self(entries))
    }

    /// Whether `content_type` (a sniffed type) may be stored.
    pub fn allows(&self, content_type: &str) -> bool {
        let content_type = content_type.to_ascii_lowercase();
        let family = content_type.split_once('/').map(|(kind, _)| kind);
        self.0.iter().any(|entry| {
            entry == "*" || *entry == content_type || entry.strip_suffix("/*").is_some_and(|kind| Some(kind) == family)
        })
    }
}

impl Default for TypeAllowlist {
    fn default() -> Self {
        Self::parse(DEFAULT_ALLOWED_TYPES).unwrap_or_else(|_| Self(vec!["text/plain".to_owned()]))
    }
}

impl fmt::Display for TypeAllowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_folders_controls_and_edges() {
        assert_eq!(sanitize_file_name("report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\a\\report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("  .hidden.  "), "hidden");
        assert_eq!(sanitize_file_name("a\r\nb\0c\td.txt"), "abc d.txt");
        assert_eq!(sanitize_file_name("invoice\u{202e}fdp.exe"), "invoicefdp.exe");
        assert_eq!(sanitize_file_name(""), "file");
        assert_eq!(sanitize_file_name(".."), "file");
        assert_eq!(sanitize_file_name("dir/"), "file");
        let long = "é".repeat(300);
        let kept = sanitize_file_name(&long);
        assert!(kept.len() <= MAX_NAME_BYTES && long.starts_with(&kept));
    }

    #[test]
    fn dispositions_cannot_be_broken_by_a_name() {
        assert_eq!(
            content_disposition("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        let tricky = content_disposition("a\"; filename=evil.exe;\\ résumé.pdf");
        assert!(tricky.starts_with("attachment; filename=\"a_; filename=evil.exe;_ r_sum_.pdf\";"), "{tricky}");
        assert!(tricky.ends_with("filename*=UTF-8''a%22%3B%20filename%3Devil.exe%3B%5C%20r%C3%A9sum%C3%A9.pdf"));
        assert!(!tricky.contains('\r') && !tricky.contains('\n'));
        assert_eq!(tricky.matches('"').count(), 2, "{tricky}");
    }

    #[test]
    fn types_are_sniffed_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff("hello, wörld\n".as_bytes()), "text/plain");
        let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
        elf.resize(64, 0);
        assert_eq!(sniff(&elf), "application/x-executable");
        assert_eq!(sniff(b"\0\x01\x02binary"), OCTET_STREAM);
        assert_eq!(sniff(b""), OCTET_STREAM);
        // A head cut inside a multi-byte character is still text.
        assert_eq!(sniff(&"ééé".as_bytes()[..5]), "text/plain");
    }

    #[test]
    fn allowlists_match_exact_types_families_and_everything() {
        let list = TypeAllowlist::parse("image/*, application/pdf").expect("valid");
        assert!(list.allows("image/png") && list.allows("IMAGE/JPEG") && list.allows("application/pdf"));
        assert!(!list.allows("text/plain") && !list.allows("application/pdfx"));
        assert!(TypeAllowlist::parse("*").expect("valid").allows("application/x-executable"));
        assert!(TypeAllowlist::parse("text").is_err());
        assert!(TypeAllowlist::parse(" , ").is_err());
        assert!(TypeAllowlist::parse("text/pl ain").is_err());
        let default = TypeAllowlist::default();
        assert!(default.allows("text/plain") && default.allows("image/png") && default.allows("application/pdf"));
        assert!(!default.allows("text/html") && !default.allows("application/x-executable"));
        assert!(!default.allows(OCTET_STREAM));
    }
}
