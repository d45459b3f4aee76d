//! pinhole-bundle: make, inspect and verify signed update bundles.
//! See docs/bundle-format.md and docs/ota.md.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ed25519_dalek::SigningKey;
use pinhole_ota::format::{
    self, encode_public_key, encode_secret_key, hash_stream, hex, key_id, parse_public_key,
    parse_secret_key, Encoding, Header, ImageInfo, HEADER_LEN,
};
use pinhole_ota::{BundleEvent, BundleReader, ImageKind, Manifest, OtaError, Policy, Slot};

#[derive(Parser)]
#[command(version, about = "Make, inspect and verify pinhole update bundles")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate an Ed25519 signing key pair (refuses to overwrite).
    Keygen {
        /// Directory for NAME.key (mode 0600) and NAME.pub.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "pinhole-bundle")]
        name: String,
    },
    /// Build and sign a bundle.
    Create {
        /// Secret key file. Without it (and without --release) a development
        /// key in --dev-keys is used, generated on first use.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Release build: --key is required, no development key.
        #[arg(long)]
        release: bool,
        /// Where the development key lives (never commit it).
        #[arg(long, default_value = "out/keys")]
        dev_keys: PathBuf,
        /// Board compatible string: rpi4, qemu-arm64.
        #[arg(long)]
        board: String,
        /// Semantic version of the system.
        #[arg(long)]
        version: String,
        /// Boot partition image for either slot.
        #[arg(long, conflicts_with_all = ["boot_a", "boot_b"], required_unless_present_all = ["boot_a", "boot_b"])]
        boot: Option<PathBuf>,
        /// Boot partition image for slot A only (its cmdline names root_a).
        #[arg(long, requires = "boot_b")]
        boot_a: Option<PathBuf>,
        /// Boot partition image for slot B only.
        #[arg(long, requires = "boot_a")]
        boot_b: Option<PathBuf>,
        /// Root filesystem image.
        #[arg(long)]
        root: PathBuf,
        /// Build time (Unix seconds); default $SOURCE_DATE_EPOCH, else now.
        #[arg(long)]
        build_time: Option<u64>,
        #[arg(short, long)]
        out: PathBuf,
        /// Image encoding: zstd (format 2; an image that does not shrink is
        /// stored as is) or none.
        #[arg(long, default_value = "zstd", value_parser = ["zstd", "none"])]
        compress: String,
        /// Bundle format: 2, or 1 for devices that read only format 1
        /// (the step release; no compression).
        #[arg(long, default_value_t = format::FORMAT_VERSION, value_parser = clap::value_parser!(u16).range(1..=2))]
        format: u16,
    },
    /// Print a bundle's header and manifest (NOT verified; no key needed).
    Inspect { bundle: PathBuf },
    /// Verify a bundle completely: signature, manifest, every image hash.
    Verify {
        /// Trusted public key file (repeatable).
        #[arg(long, required = true)]
        pubkey: Vec<PathBuf>,
        /// Also require this board.
        #[arg(long)]
        board: Option<String>,
        /// Also refuse a downgrade from this version.
        #[arg(long)]
        current_version: Option<String>,
        bundle: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pinhole-bundle: {e}");
            ExitCode::FAILURE
        }
    }
}

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn run(cli: Cli) -> R<()> {
    match cli.cmd {
        Cmd::Keygen { out, name } => {
            let (sk, pk) = keygen(&out, &name)?;
            println!("secret key: {} (keep it off the repository)", sk.display());
            println!("public key: {}", pk.display());
            Ok(())
        }
        Cmd::Create {
            key,
            release,
            dev_keys,
            board,
            version,
            boot,
            boot_a,
            boot_b,
            root,
            build_time,
            out,
            compress,
            format,
        } => {
            let key = match (key, release) {
                (Some(k), _) => read_secret(&k)?,
                (None, true) => return Err("--release needs an explicit --key; refusing to sign a release with a development key".into()),
                (None, false) => dev_key(&dev_keys)?,
            };
            let build_time = match build_time {
                Some(t) => t,
                None => match std::env::var("SOURCE_DATE_EPOCH") {
                    Ok(s) => s
                        .trim()
                        .parse()
                        .map_err(|_| "SOURCE_DATE_EPOCH is not a number")?,
                    Err(_) => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_secs(),
                },
            };
            let mut files: Vec<(ImageKind, Option<Slot>, PathBuf)> = Vec::new();
            match (boot, boot_a, boot_b) {
                (Some(b), _, _) => files.push((ImageKind::Boot, None, b)),
                (None, Some(a), Some(b)) => {
                    files.push((ImageKind::Boot, Some(Slot::A), a));
                    files.push((ImageKind::Boot, Some(Slot::B), b));
                }
                _ => return Err("give --boot, or both --boot-a and --boot-b".into()),
            }
            files.push((ImageKind::Root, None, root));
            if format < 2 && compress != "none" {
                return Err("format 1 has no compression: add --compress none".into());
            }
            let opts = CreateOpts {
                format,
                zstd: compress == "zstd",
            };
            create(&key, board, version, build_time, &files, &out, opts)?;
            println!(
                "wrote {} (signed by key {})",
                out.display(),
                hex(&key_id(&key.verifying_key()))
            );
            Ok(())
        }
        Cmd::Inspect { bundle } => inspect(&bundle),
        Cmd::Verify {
            pubkey,
            board,
            current_version,
            bundle,
        } => {
            let keys = pubkey
                .iter()
                .map(|p| {
                    let t = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
                    parse_public_key(&t).map_err(|e| format!("{}: {e}", p.display()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let current_version = current_version
                .map(|v| {
                    semver::Version::parse(&v).map_err(|e| format!("--current-version {v}: {e}"))
                })
                .transpose()?;
            let policy = Policy {
                trusted_keys: keys,
                compatible: board,
                // No --current-version: no version check at all.
                allow_downgrade: current_version.is_none(),
                current_version,
            };
            let m = verify(&bundle, policy)?;
            println!(
                "OK: {} {} for {}, {} images, all hashes match",
                m.product,
                m.version,
                m.compatible,
                m.images.len()
            );
            Ok(())
        }
    }
}

fn keygen(dir: &Path, name: &str) -> R<(PathBuf, PathBuf)> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let skp = dir.join(format!("{name}.key"));
    let pkp = dir.join(format!("{name}.pub"));
    for p in [&skp, &pkp] {
        if p.exists() {
            return Err(format!("{} exists; refusing to overwrite a key", p.display()).into());
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
    let sk = SigningKey::from_bytes(&seed);
    // create_new + 0600: never clobber, never readable by others.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&skp)
        .map_err(|e| format!("{}: {e}", skp.display()))?;
    f.write_all(encode_secret_key(&sk).as_bytes())?;
    f.sync_all()?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&pkp)
        .map_err(|e| format!("{}: {e}", pkp.display()))?;
    f.write_all(encode_public_key(&sk.verifying_key()).as_bytes())?;
    f.sync_all()?;
    Ok((skp, pkp))
}

fn read_secret(p: &Path) -> R<SigningKey> {
    let t = fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(parse_secret_key(&t).map_err(|e| format!("{}: {e}", p.display()))?)
}

/// The local development key, made on first use.
fn dev_key(dir: &Path) -> R<SigningKey> {
    let p = dir.join("dev.key");
    if !p.exists() {
        keygen(dir, "dev")?;
        eprintln!(
            "pinhole-bundle: generated development key {} (and dev.pub); do not ship it",
            p.display()
        );
    }
    eprintln!(
        "pinhole-bundle: signing with the DEVELOPMENT key {}",
        p.display()
    );
    read_secret(&p)
}

struct CreateOpts {
    format: u16,
    zstd: bool,
}

fn create(
    key: &SigningKey,
    board: String,
    version: String,
    build_time: u64,
    files: &[(ImageKind, Option<Slot>, PathBuf)],
    out: &Path,
    opts: CreateOpts,
) -> R<()> {
    let mut images = Vec::new();
    // Compressed images are kept in memory until the signed head (which
    // names their stored sizes) is written: a host tool, a few hundred MB.
    let mut stored: Vec<Option<Vec<u8>>> = Vec::new();
    for (kind, slot, p) in files {
        let mut f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let (size, sha, z) = if opts.zstd {
            let mut z = Vec::new();
            let (size, sha, n) = format::compress_image(&mut f, &mut z)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            debug_assert_eq!(n, z.len() as u64);
            // Already compressed (the squashfs root): store as is unless
            // zstd saves at least 2%, so the device does not decompress
            // for nothing.
            (size, sha, (n < size - size / 50).then_some(z))
        } else {
            let (size, sha) = hash_stream(&mut f).map_err(|e| format!("{}: {e}", p.display()))?;
            (size, sha, None)
        };
        images.push(ImageInfo {
            kind: *kind,
            slot: *slot,
            size,
            sha256: hex(&sha),
            encoding: if z.is_some() {
                Encoding::Zstd
            } else {
                Encoding::None
            },
            stored_size: z.as_ref().map(|z| z.len() as u64),
        });
        stored.push(z);
    }
    let manifest = Manifest {
        format: opts.format,
        product: format::PRODUCT.into(),
        compatible: board,
        version,
        build_time,
        images,
    };
    manifest.validate()?;
    // Write beside the target and rename: no half-written bundle on failure.
    let tmp = out.with_extension("partial");
    let res = (|| -> R<()> {
        let mut w =
            BufWriter::new(File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?);
        let mut readers = files
            .iter()
            .zip(&stored)
            .map(|((_, _, p), z)| -> R<Box<dyn Read>> {
                Ok(match z {
                    Some(z) => Box::new(&z[..]),
                    None => Box::new(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
                })
            })
            .collect::<R<Vec<_>>>()?;
        format::write_bundle(&mut w, &manifest, key, &mut readers)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, out)?;
    // The images could have changed between hashing and copying: check.
    let policy = Policy {
        trusted_keys: vec![key.verifying_key()],
        compatible: None,
        current_version: None,
        allow_downgrade: true,
    };
    verify(out, policy).map_err(|e| format!("the bundle just written does not verify: {e}"))?;
    Ok(())
}

fn inspect(p: &Path) -> R<()> {
    let mut f = File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let mut hb = [0u8; HEADER_LEN];
    f.read_exact(&mut hb)
        .map_err(|e| format!("{}: header: {e}", p.display()))?;
    let h = Header::parse(&hb)?;
    let mut json = vec![0u8; h.manifest_len as usize];
    f.read_exact(&mut json)
        .map_err(|e| format!("{}: manifest: {e}", p.display()))?;
    let m = Manifest::parse(&json)?;
    println!("# NOT verified: use `pinhole-bundle verify --pubkey …` for that");
    println!("format:   {}", h.format);
    println!("key id:   {}", hex(&h.key_id));
    println!("manifest: {} bytes", h.manifest_len);
    for (i, im) in m.images.iter().enumerate() {
        let slot = im.slot.map_or("any".to_string(), |s| s.to_string());
        println!(
            "image {i}: {} slot {slot}: {} bytes, stored {} ({}, {:.1}%)",
            im.kind,
            im.size,
            im.stored_len(),
            im.encoding.as_str(),
            100.0 * im.stored_len() as f64 / im.size.max(1) as f64
        );
    }
    println!("{}", String::from_utf8_lossy(&m.to_json()));
    Ok(())
}

/// Streams the whole file through the same reader the device uses.
fn verify(p: &Path, policy: Policy) -> Result<Manifest, OtaError> {
    let mut f = File::open(p).map_err(|e| OtaError::io(format!("opening {}", p.display()), e))?;
    let mut r = BundleReader::new(policy);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| OtaError::io(format!("reading {}", p.display()), e))?;
        if n == 0 {
            break;
        }
        // Bounded: decompressed blocks are dropped after each call.
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let mut ev = Vec::new();
            let used = r.feed_limited(rest, &mut ev, 4 << 20)?;
            for e in &ev {
                if let BundleEvent::ImageEnd { index, .. } = e {
                    eprintln!("image {index}: SHA-256 ok");
                }
            }
            rest = &rest[used..];
        }
    }
    r.finish()?;
    r.manifest()
        .cloned()
        .ok_or_else(|| OtaError::internal("finished without a manifest"))
}
