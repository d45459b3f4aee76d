//! Turns the JSON lines `bench/fanout.sh` collects into
//! `bench/results/fanout-<date>.md` and the table in `bench/README.md`.
//!
//! Input lines: `{"kind":"meta",…}`, `{"kind":"run","load1":…,
//! "encoded":"…","result":{…}}` (the client's RESULT), and
//! `{"kind":"idle","process":…,"rss_kib":…,"hwm_kib":…,"load1":…}`.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Parser;
use serde_json::Value;

const BEGIN: &str = "<!-- fanout-table:begin (written by bench/fanout.sh) -->";
const END: &str = "<!-- fanout-table:end -->";

#[derive(Parser, Debug)]
#[command(about = "format fan-out benchmark results")]
struct Cli {
    /// JSON lines written by bench/fanout.sh.
    #[arg(long)]
    input: PathBuf,
    /// Results file to write (markdown).
    #[arg(long)]
    out: PathBuf,
    /// README whose fan-out table is replaced (or appended).
    #[arg(long)]
    readme: Option<PathBuf>,
    /// How the results file is linked from the README.
    #[arg(long)]
    link: Option<String>,
}

fn die(msg: &str) -> ! {
    eprintln!("fanout-report: {msg}");
    std::process::exit(1);
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn ms(v: &Value) -> String {
    f(v).map_or("–".into(), |x| format!("{x:.2}"))
}

/// "0.42 (0.25–0.5)": interpolated estimate and the histogram bucket.
fn server_q(v: &Value) -> String {
    match (f(&v["ms"]), f(&v["bucket_ms"][0]), f(&v["bucket_ms"][1])) {
        (Some(x), Some(lo), Some(hi)) => format!("{x:.2} ({lo}–{hi})"),
        _ => "–".into(),
    }
}

fn mib(kib: &Value) -> String {
    f(kib).map_or("–".into(), |k| format!("{:.1}", k / 1024.0))
}

fn main() {
    let cli = Cli::parse();
    let text = std::fs::read_to_string(&cli.input).unwrap_or_else(|e| die(&e.to_string()));
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| die(&format!("{e}: {l}"))))
        .collect();
    let meta = lines
        .iter()
        .find(|l| l["kind"] == "meta")
        .cloned()
        .unwrap_or(Value::Null);
    let runs: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "run").collect();
    let idle: Vec<&Value> = lines.iter().filter(|l| l["kind"] == "idle").collect();

    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let date = s(&meta["date"]);
    let machine = format!(
        "{}, {} cores ({}), Linux {}",
        s(&meta["cpu_model"]),
        s(&meta["cores"]),
        s(&meta["virt"]),
        s(&meta["kernel"])
    );

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| Viewers | Server-added latency p50 / p99, ms (server histogram: estimate (bucket)) | Client-measured p50 / p99 / max, ms | Server CPU, % of one core | Server waiting for a CPU, ms/s | Server RSS / peak, MiB | Frames dropped | Frames per viewer min / published | Starved viewers | Load (1 min) |"
    );
    let _ = writeln!(table, "|---:|---|---|---:|---:|---|---:|---|---:|---:|");
    for r in &runs {
        let res = &r["result"];
        let c = &res["client"];
        let sv = &res["server"];
        let _ = writeln!(
            table,
            "| {} | {} / {} | {} / {} / {} | {:.1} | {} | {} / {} | {} | {} / {} | {} | {} |",
            res["viewers"],
            server_q(&sv["p50"]),
            server_q(&sv["p99"]),
            ms(&c["p50_ms"]),
            ms(&c["p99_ms"]),
            ms(&c["max_ms"]),
            f(&sv["cpu_cores"]).unwrap_or(f64::NAN) * 100.0,
            f(&sv["runqueue_wait_ms_per_s"]).map_or("–".into(), |x| format!("{x:.0}")),
            mib(&sv["rss_kib"]),
            mib(&sv["hwm_kib"]),
            sv["drops_window"],
            c["min_frames_per_viewer"],
            res["frames_published"],
            c["starved_viewers"],
            r["load1"].as_str().unwrap_or("?"),
        );
    }
    let mut idle_table = String::new();
    if !idle.is_empty() {
        let _ = writeln!(
            idle_table,
            "| Idle, no viewers | VmRSS, MiB | VmHWM, MiB | Load (1 min) |"
        );
        let _ = writeln!(idle_table, "|---|---:|---:|---:|");
        for i in &idle {
            let _ = writeln!(
                idle_table,
                "| {} | {} | {} | {} |",
                s(&i["process"]),
                mib(&i["rss_kib"]),
                mib(&i["hwm_kib"]),
                i["load1"].as_str().unwrap_or("?"),
            );
        }
    }

    let encoded = runs
        .first()
        .and_then(|r| r["encoded"].as_str())
        .unwrap_or("?");
    let listen = runs
        .first()
        .and_then(|r| r["listen"].as_str())
        .unwrap_or("?");
    let window = runs
        .first()
        .and_then(|r| f(&r["result"]["window_s"]))
        .unwrap_or(f64::NAN);

    let mut md = String::new();
    let _ = writeln!(md, "# Fan-out benchmark, {date}\n");
    let _ = writeln!(
        md,
        "Machine: {machine}; {}; {}.",
        s(&meta["rustc"]),
        s(&meta["commit"])
    );
    let _ = writeln!(
        md,
        "Server: `fanout-server` (real `pinhole_hub::Hub` + `pinhole_server::serve`), {}; client: `fanout-client` (`/ws/h264` viewers, tokio-tungstenite), {}.",
        s(&meta["server_pin"]),
        s(&meta["client_pin"])
    );
    let _ = writeln!(md, "Server startup: `{listen}`.");
    let _ = writeln!(
        md,
        "Stream: test pattern 1280x720, 30 fps, encoder bitrate 4 Mbit/s, IDR every 30 frames, 2 s pre-encoded in a child process and looped; every AU gets a timestamp SEI with the publish wallclock. Encoder output: `{encoded}` (filler NAL type 12 on every AU brings the published rate to ~4 Mbit/s when the pattern compresses better than asked)."
    );
    let _ = writeln!(
        md,
        "Window: {window:.1} s per row, after every viewer has passed its second keyframe (≥ {} s warm-up). Latency: server = `pinhole_send_latency_seconds` delta over the window (publish → write completed, per viewer; bucketed, so the estimate is interpolated inside its bucket); client = receive wallclock − SEI wallclock (includes the client's own scheduling). CPU = server utime+stime / window; waiting for a CPU = run-queue wait of the server's threads (/proc/<pid>/task/*/schedstat) per second of window, i.e. how much other load on the machine held it back. Drops = `/api/status` `drops` delta.\n",
        s(&meta["warmup"])
    );
    md.push_str(&table);
    if !idle_table.is_empty() {
        md.push('\n');
        md.push_str(&idle_table);
    }
    md.push_str("\nRaw results (one JSON line per measurement):\n\n```json\n");
    md.push_str(text.trim_end());
    md.push_str("\n```\n");
    std::fs::write(&cli.out, md).unwrap_or_else(|e| die(&e.to_string()));

    let Some(readme) = cli.readme else {
        return;
    };
    let mut section = String::new();
    let _ = writeln!(section, "{BEGIN}");
    let _ = writeln!(
        section,
        "Latest run: {date}, {machine}; {} (details and raw numbers: [{}]({})).\n",
        s(&meta["server_pin"]),
        cli.link.as_deref().unwrap_or("results"),
        cli.link.as_deref().unwrap_or("results/")
    );
    section.push_str(&table);
    if !idle_table.is_empty() {
        section.push('\n');
        section.push_str(&idle_table);
    }
    section.push_str(END);
    let old = std::fs::read_to_string(&readme).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => {
            format!("{}{}{}", &old[..b], section, &old[e + END.len()..])
        }
        _ => format!(
            "{}\n## Fan-out (`bench/fanout.sh`)\n\n{section}\n",
            old.trim_end()
        ),
    };
    std::fs::write(&readme, new).unwrap_or_else(|e| die(&e.to_string()));
}
