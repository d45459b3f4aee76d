//! pinholed's TOML config: parse, validate, and a valid config must survive
//! a serialise/parse round trip unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pinholed::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::from_toml(text, std::path::Path::new("fuzz.toml")) else {
        return;
    };
    if cfg.validate().is_ok() {
        let again = toml::to_string(&cfg).expect("a valid config serialises");
        let back = Config::from_toml(&again, std::path::Path::new("again.toml"))
            .expect("a serialised config parses");
        assert_eq!(cfg, back);
    }
});
