//! The media file names in the segment directory (see the table in [`super`]).

/// What a file name in the segment directory refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Init { generation: u64 },
    Segment { msn: u64 },
    Part { msn: u64, part: u64 },
}

impl NameKind {
    /// Parses a media file name written with `prefix`; `None` for anything
    /// else.
    pub fn parse(prefix: &str, name: &str) -> Option<NameKind> {
        let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
        if let Some(gen) = rest
            .strip_prefix("init")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(NameKind::Init {
                generation: gen.parse().ok()?,
            });
        }
        let stem = rest.strip_suffix(".m4s")?;
        match stem.split_once('.') {
            Some((msn, part)) => Some(NameKind::Part {
                msn: msn.parse().ok()?,
                part: part.parse().ok()?,
            }),
            None => Some(NameKind::Segment {
                msn: stem.parse().ok()?,
            }),
        }
    }
}
