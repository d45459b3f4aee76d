//! Wires `[ota]` to the update service: trusted keys, slots, the boot
//! backend, and the health signals a trial boot must show before it is
//! committed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pinhole_media::{Clock, SystemClock};
use pinhole_ota::format::parse_public_key;
use pinhole_ota::{
    BootControl, BootInfo, Config, FileBootControl, FileSlots, Health, Installer, Policy,
    RebootMethod, RpiTryboot, SlotPaths, Updater,
};
use pinhole_server::update::UpdateService;

use crate::config::OtaConfig;
use crate::error::OtaSetupError;

/// The installer's clock: monotonic time is time since boot, suspend
/// included, so the trial deadline does not restart when pinholed does.
struct BootClock {
    wall: SystemClock,
}

impl Clock for BootClock {
    fn now_us(&self) -> u64 {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(|t| u64::try_from(Duration::from(t).as_micros()).unwrap_or(u64::MAX))
            .unwrap_or_default()
    }
    fn wall_us(&self) -> u64 {
        self.wall.wall_us()
    }
    fn sleep_until_us(&self, deadline_us: u64) {
        let now = self.now_us();
        if deadline_us > now {
            std::thread::sleep(Duration::from_micros(deadline_us - now));
        }
    }
}

pub fn start(cfg: &OtaConfig) -> Result<Option<Arc<UpdateService>>, OtaSetupError> {
    if !cfg.enabled {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for path in &cfg.public_keys {
        let text = std::fs::read_to_string(path).map_err(|source| OtaSetupError::ReadKey {
            path: path.clone(),
            source,
        })?;
        keys.push(
            parse_public_key(&text).map_err(|source| OtaSetupError::BadKey {
                path: path.clone(),
                source,
            })?,
        );
    }
    if keys.is_empty() {
        return Err(OtaSetupError::NoKeys);
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
        other => return Err(OtaSetupError::UnknownBoot(other.to_owned())),
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
) -> Result<Arc<UpdateService>, OtaSetupError> {
    let version = config
        .policy
        .current_version
        .as_ref()
        .map(|v| v.to_string());
    let info = BootInfo::read(&boot).map_err(OtaSetupError::BootState)?;
    let slots = FileSlots::new(paths, info.active);
    let installer = Installer::new(Updater::new(config, info), slots, boot);
    let clock = Arc::new(BootClock {
        wall: SystemClock::new(),
    });
    UpdateService::spawn(installer, clock, version).map_err(OtaSetupError::Thread)
}

/// The running image's version. Unknown (say so loudly): every bundle is
/// then refused unless downgrades are allowed, since the downgrade check
/// cannot be made.
fn read_version(path: &Path) -> Option<semver::Version> {
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| semver::Version::parse(t.trim()).map_err(|e| e.to_string()));
    match parsed {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(
                file = %path.display(),
                error = %e,
                "ota: cannot read the running version; updates are refused unless [ota] allow_downgrade = true"
            );
            None
        }
    }
}

/// The trial-boot health: started, frames flowing, HTTP answering.
pub fn health(ready: bool, frames_flowing: bool, http_answering: bool) -> Health {
    Health {
        ready,
        frames_flowing,
        http_answering,
    }
}
