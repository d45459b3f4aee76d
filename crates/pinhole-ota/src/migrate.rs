//! Config schema migration. `/data` is never touched by an update, but a
//! new system may expect a newer config schema: on first start it migrates
//! the file forward and keeps the old one as `config.toml.v<N>.bak`.
//!
//! The schema version is the top-level `config_version` key (absent = 1).

use std::path::Path;

use crate::boot::atomic_write;
use crate::error::{OtaError, Result};

/// The schema this build writes.
pub const CURRENT_VERSION: i64 = 2;

/// Schema version of a config text (absent key = 1).
pub fn detect_version(text: &str) -> Result<i64> {
    let t: toml::Table = text
        .parse()
        .map_err(|e| OtaError::bad_bundle(format!("config is not valid TOML: {e}")))?;
    match t.get("config_version") {
        None => Ok(1),
        Some(toml::Value::Integer(v)) => Ok(*v),
        Some(v) => Err(OtaError::bad_bundle(format!(
            "config_version = {v} is not an integer"
        ))),
    }
}

/// Pure: migrates `old` from schema `from` to [`CURRENT_VERSION`].
pub fn migrate(old: &str, from: i64) -> Result<String> {
    if !(1..=CURRENT_VERSION).contains(&from) {
        return Err(OtaError::incompatible(format!(
            "config schema {from} is unknown to this build (it knows 1..={CURRENT_VERSION})"
        )));
    }
    let mut t: toml::Table = old
        .parse()
        .map_err(|e| OtaError::bad_bundle(format!("config is not valid TOML: {e}")))?;
    for v in from..CURRENT_VERSION {
        match v {
            1 => v1_to_v2(&mut t)?,
            _ => unreachable!("every version below CURRENT_VERSION has a step"),
        }
    }
    t.insert(
        "config_version".into(),
        toml::Value::Integer(CURRENT_VERSION),
    );
    toml::to_string(&t).map_err(|e| OtaError::internal(format!("serializing config: {e}")))
}

/// Example step: v1 kept the picture settings at the top level; v2 has them
/// under `[video]`.
fn v1_to_v2(t: &mut toml::Table) -> Result<()> {
    const MOVED: [&str; 5] = ["width", "height", "fps", "bitrate", "keyframe_interval"];
    let mut video = match t.remove("video") {
        None => toml::Table::new(),
        Some(toml::Value::Table(v)) => v,
        Some(_) => return Err(OtaError::bad_bundle("config: `video` must be a table")),
    };
    for k in MOVED {
        if let Some(v) = t.remove(k) {
            if video.contains_key(k) {
                return Err(OtaError::bad_bundle(format!(
                    "config: `{k}` is set both at the top level and in [video]"
                )));
            }
            video.insert(k.into(), v);
        }
    }
    if !video.is_empty() {
        t.insert("video".into(), toml::Value::Table(video));
    }
    Ok(())
}

/// I/O shell: migrates `path` in place if it is older than this build.
/// Keeps the old file as `<name>.v<N>.bak` (written first, so a power cut
/// at any point leaves the old config or both). Returns whether it migrated.
pub fn migrate_file(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OtaError::io(format!("reading {}", path.display()), e))?;
    let from = detect_version(&text)?;
    if from >= CURRENT_VERSION {
        return Ok(false);
    }
    let new = migrate(&text, from)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| OtaError::internal(format!("{} has no file name", path.display())))?;
    let bak = format!("{name}.v{from}.bak");
    if !dir.join(&bak).exists() {
        atomic_write(dir, &bak, text.as_bytes())?;
    }
    atomic_write(dir, name, new.as_bytes())?;
    tracing::info!(path = %path.display(), from, to = CURRENT_VERSION, "config migrated; old kept as {bak}");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "listen = [\"127.0.0.1:8080\"]\nwidth = 1920\nheight = 1080\nfps = 25\n[http]\njpeg_quality = 70\n";

    #[test]
    fn v1_moves_video_keys() {
        let new = migrate(V1, 1).unwrap();
        let t: toml::Table = new.parse().unwrap();
        assert_eq!(t["config_version"].as_integer(), Some(2));
        assert_eq!(t["video"]["width"].as_integer(), Some(1920));
        assert_eq!(t["video"]["fps"].as_integer(), Some(25));
        assert!(t.get("width").is_none());
        assert_eq!(t["http"]["jpeg_quality"].as_integer(), Some(70));
        assert_eq!(t["listen"][0].as_str(), Some("127.0.0.1:8080"));
        assert_eq!(detect_version(&new).unwrap(), 2);
    }

    #[test]
    fn migration_is_idempotent_at_current() {
        let new = migrate(V1, 1).unwrap();
        assert_eq!(migrate(&new, 2).unwrap(), new);
    }

    #[test]
    fn conflicts_and_unknown_versions_are_refused() {
        assert!(migrate("width = 1\n[video]\nwidth = 2\n", 1).is_err());
        assert_eq!(migrate(V1, 3).unwrap_err().http_status(), 422);
        assert!(migrate("not toml [", 1).is_err());
    }

    #[test]
    fn file_is_migrated_and_old_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        std::fs::write(&p, V1).unwrap();
        assert!(migrate_file(&p).unwrap());
        assert_eq!(
            std::fs::read_to_string(d.path().join("config.toml.v1.bak")).unwrap(),
            V1
        );
        assert_eq!(
            detect_version(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            2
        );
        assert!(!migrate_file(&p).unwrap());
    }
}
