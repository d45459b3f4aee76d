//! Wires `[ota]` to the update service: trusted keys, slots, the boot
//! backend, and the health signals a trial boot must show before it is
//! committed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pinhole_ota::format::parse_public_key;
use pinhole_ota::{
    BootControl, BootInfo, Config, FileBootControl, FileSlots, Health, Installer, Policy,
    RebootMethod, RpiTryboot, SlotPaths, Updater,
};
use pinhole_server::update::UpdateService;
use pinhole_server::ListenAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::OtaConfig;

/// Time since boot, suspend included: the trial deadline must not restart
/// when pinholed does.
fn since_boot() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

pub fn start(cfg: &OtaConfig) -> Result<Option<Arc<UpdateService>>, String> {
    if !cfg.enabled {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for path in &cfg.public_keys {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("ota: cannot read public key {}: {e}", path.display()))?;
        keys.push(
            parse_public_key(&text).map_err(|e| format!("ota: key {}: {e}", path.display()))?,
        );
    }
    if keys.is_empty() {
        return Err("ota: no public_keys: every bundle would be refused".into());
    }
    let version = read_version(&cfg.version_file);
    let mut config = Config::new(Policy {
        trusted_keys: keys,
        compatible: Some(cfg.board.clone()),
        current_version: version.clone(),
        allow_downgrade: cfg.allow_downgrade,
    });
    config.health_timeout = Duration::from_secs(cfg.health_timeout_s);
    let method = if cfg.reboot {
        RebootMethod::Syscall
    } else {
        RebootMethod::Disabled
    };
    let slots_paths = SlotPaths::by_partlabel(&cfg.slots_dir);
    let svc = match cfg.boot.as_str() {
        "file" => spawn(
            FileBootControl::new(&cfg.bootsel_dir, &cfg.cmdline, method),
            slots_paths,
            config,
        )?,
        "rpi" => spawn(
            RpiTryboot::new(&cfg.bootsel_dir, &cfg.device_tree_dir, method),
            slots_paths,
            config,
        )?,
        other => return Err(format!("ota.boot = {other:?}: use \"file\" or \"rpi\"")),
    };
    let st = svc.status();
    tracing::info!(
        version = ?version.map(|v| v.to_string()),
        slot = %st.active_slot,
        trial = st.trial,
        "updates enabled"
    );
    Ok(Some(svc))
}

fn spawn<B: BootControl + Send + 'static>(
    boot: B,
    paths: SlotPaths,
    config: Config,
) -> Result<Arc<UpdateService>, String> {
    let version = config
        .policy
        .current_version
        .as_ref()
        .map(|v| v.to_string());
    let info = BootInfo::read(&boot).map_err(|e| format!("ota: reading the boot state: {e}"))?;
    let slots = FileSlots::new(paths, info.active);
    let installer = Installer::new(Updater::new(config, info), slots, boot);
    UpdateService::spawn(installer, since_boot, version).map_err(|e| format!("ota: thread: {e}"))
}

fn read_version(path: &Path) -> Option<semver::Version> {
    let text = std::fs::read_to_string(path).ok()?;
    semver::Version::parse(text.trim()).ok()
}

/// Whether our own HTTP listener answers `/api/status` with 200.
pub async fn http_answers(addr: &ListenAddr) -> bool {
    let probe = async {
        let req = b"GET /api/status HTTP/1.0\r\nHost: localhost\r\n\r\n";
        let mut head = [0u8; 16];
        let n = match addr {
            ListenAddr::Tcp(a) => {
                let mut s = tokio::net::TcpStream::connect(a).await.ok()?;
                s.write_all(req).await.ok()?;
                s.read(&mut head).await.ok()?
            }
            ListenAddr::Unix(p) => {
                let mut s = tokio::net::UnixStream::connect(p).await.ok()?;
                s.write_all(req).await.ok()?;
                s.read(&mut head).await.ok()?
            }
        };
        Some(head[..n].windows(5).any(|w| w == b" 200 "))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

/// The trial-boot health: started, frames flowing, HTTP answering.
pub fn health(ready: bool, frames_flowing: bool, http_answering: bool) -> Health {
    Health {
        ready,
        frames_flowing,
        http_answering,
    }
}
