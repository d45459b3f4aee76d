//! With the `libcamera` feature: compiles `src/controls_shim.cpp` (the
//! control enumeration and setting the `libcamera` crate 0.2.3 lacks)
//! against the system's libcamera headers, found like libcamera-sys finds
//! them (pkg-config). Without the feature: nothing.

fn main() {
    #[cfg(feature = "libcamera")]
    {
        println!("cargo:rerun-if-changed=src/controls_shim.cpp");
        let lib = pkg_config::Config::new()
            .cargo_metadata(false)
            .probe("libcamera")
            .expect("libcamera (pkg-config libcamera; install libcamera-dev)");
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .flag("-std=c++17")
            .file("src/controls_shim.cpp");
        for dir in &lib.include_paths {
            build.include(dir);
        }
        build.compile("pinhole_controls_shim");
    }
}
