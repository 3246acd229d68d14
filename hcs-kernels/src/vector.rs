//! Which compiled version of the hot loops this CPU runs.
//!
//! The innermost loops of registration, assembly, projection, the composite, the Gaussian and top-hat filters,
//! the percentiles, the QC focus score and the narrowing of planes to their storage type
//! (`hcs-vfs`) are compiled three times on x86-64 (`multiversion`): for the baseline every
//! x86-64 CPU has (SSE2), for AVX + AVX2 + FMA, and for AVX-512 (Ice Lake's set and later);
//! the first call picks the first version this CPU can run. All do the same arithmetic in the
//! same order (each loop keeps its own lanes; a wider register holds more of them), so they give
//! the same results; the portable one is slower. `hcs devices` says which one runs, and
//! `scripts/test-portable-loops.sh` runs the kernels' tests on emulated CPUs without AVX and
//! without AVX-512, so the portable and AVX2 versions are tested, not only compiled.

/// The AVX-512 target of every dispatched loop, as its attribute spells it. `multiversion`
/// adds [`AVX512_ADDED_BY_MULTIVERSION`] to any target that names an AVX-512 feature, and
/// checks those too before it runs that version.
pub const AVX512_TARGET: &str = "x86_64+avx+avx2+fma+avx512f";

/// The AVX2 target of every dispatched loop, run where the CPU lacks [`AVX512_TARGET`].
pub const AVX2_TARGET: &str = "x86_64+avx+avx2+fma";

/// The features `multiversion` (0.9) adds to a target naming any AVX-512 feature: Ice Lake's
/// AVX-512 set, its guard against the first AVX-512 CPUs (Skylake-SP), whose 512-bit
/// instructions lower the clock. Those run the AVX2 version.
pub const AVX512_ADDED_BY_MULTIVERSION: [&str; 13] = [
    "avx512bw",
    "avx512cd",
    "avx512dq",
    "avx512vl",
    "avx512bitalg",
    "avx512ifma",
    "avx512vbmi",
    "avx512vbmi2",
    "avx512vnni",
    "avx512vpopcntdq",
    "gfni",
    "vaes",
    "vpclmulqdq",
];

/// The `targets(...)` list of every dispatched loop's attribute, as written:
/// `#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]`
/// (a test checks that each attribute names these, in this order).
pub fn hot_loop_targets() -> String {
    format!("\"{AVX512_TARGET}\", \"{AVX2_TARGET}\"")
}

/// The CPU features of `target` (after its architecture).
fn features(target: &'static str) -> impl Iterator<Item = &'static str> {
    target.split('+').skip(1)
}

/// Whether this CPU has every feature of `target`, and of `extra`.
fn has_all(target: &'static str, extra: &[&'static str]) -> bool {
    features(target).chain(extra.iter().copied()).all(|f| has_feature(f) == Some(true))
}

/// Whether this CPU has `feature`; on x86-64, `None` for a feature this function does not know
/// (no CPU is taken to have it). Elsewhere the dispatched loops have one version: `Some(false)`.
fn has_feature(feature: &str) -> Option<bool> {
    #[cfg(target_arch = "x86_64")]
    {
        match feature {
            "avx" => Some(std::arch::is_x86_feature_detected!("avx")),
            "avx2" => Some(std::arch::is_x86_feature_detected!("avx2")),
            "fma" => Some(std::arch::is_x86_feature_detected!("fma")),
            "avx512f" => Some(std::arch::is_x86_feature_detected!("avx512f")),
            "avx512bw" => Some(std::arch::is_x86_feature_detected!("avx512bw")),
            "avx512cd" => Some(std::arch::is_x86_feature_detected!("avx512cd")),
            "avx512dq" => Some(std::arch::is_x86_feature_detected!("avx512dq")),
            "avx512vl" => Some(std::arch::is_x86_feature_detected!("avx512vl")),
            "avx512bitalg" => Some(std::arch::is_x86_feature_detected!("avx512bitalg")),
            "avx512ifma" => Some(std::arch::is_x86_feature_detected!("avx512ifma")),
            "avx512vbmi" => Some(std::arch::is_x86_feature_detected!("avx512vbmi")),
            "avx512vbmi2" => Some(std::arch::is_x86_feature_detected!("avx512vbmi2")),
            "avx512vnni" => Some(std::arch::is_x86_feature_detected!("avx512vnni")),
            "avx512vpopcntdq" => Some(std::arch::is_x86_feature_detected!("avx512vpopcntdq")),
            "gfni" => Some(std::arch::is_x86_feature_detected!("gfni")),
            "vaes" => Some(std::arch::is_x86_feature_detected!("vaes")),
            "vpclmulqdq" => Some(std::arch::is_x86_feature_detected!("vpclmulqdq")),
            _ => None,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = feature;
        Some(false)
    }
}

/// The version of the hot loops a CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotLoops {
    /// Compiled for AVX-512 ([`AVX512_TARGET`] and [`AVX512_ADDED_BY_MULTIVERSION`]: Intel
    /// since Ice Lake, AMD since Zen 4).
    Avx512,
    /// Compiled for AVX + AVX2 + FMA (x86-64 CPUs since about 2013–2015).
    Avx2,
    /// The portable version: SSE2 on x86-64, the target's baseline elsewhere.
    Portable,
}

impl HotLoops {
    /// What this CPU runs: the first version whose features it has all of, as `multiversion`
    /// picks it.
    pub fn detect() -> Self {
        if has_all(AVX512_TARGET, &AVX512_ADDED_BY_MULTIVERSION) {
            HotLoops::Avx512
        } else if has_all(AVX2_TARGET, &[]) {
            HotLoops::Avx2
        } else {
            HotLoops::Portable
        }
    }

    /// A short name (`avx512`, `avx2` or `portable`), as `hcs devices --json` prints it.
    pub fn name(self) -> &'static str {
        match self {
            HotLoops::Avx512 => "avx512",
            HotLoops::Avx2 => "avx2",
            HotLoops::Portable => "portable",
        }
    }

    /// One sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            HotLoops::Avx512 => "hot loops run their AVX-512 versions",
            HotLoops::Avx2 => {
                "hot loops run their AVX2 + FMA versions (no AVX-512 of Ice Lake's set or later on this CPU)"
            }
            HotLoops::Portable => {
                "no AVX2 + FMA on this CPU: hot loops run their portable versions (same results, slower)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sources with dispatched loops, as compiled (a new one joins the list; hcs-exec's
    /// QC checks its own). `hcs-vfs` lies below this crate, so its file is read by path.
    const SOURCES: [(&str, &str); 8] = [
        ("hcs-vfs/src/plane.rs", include_str!("../../hcs-vfs/src/plane.rs")),
        ("composite/mod.rs", include_str!("composite/mod.rs")),
        ("morphology/mod.rs", include_str!("morphology/mod.rs")),
        ("normalize/mod.rs", include_str!("normalize/mod.rs")),
        ("projection/mod.rs", include_str!("projection/mod.rs")),
        ("separable.rs", include_str!("separable.rs")),
        ("stitch/assemble.rs", include_str!("stitch/assemble.rs")),
        ("stitch/positions.rs", include_str!("stitch/positions.rs")),
    ];

    #[test]
    fn every_dispatched_loop_is_compiled_for_the_target_detect_checks() {
        let any = "multiversion::multiversion(targets(";
        let ours = format!("{any}{}))]", hot_loop_targets());
        let count = |pattern: &str| SOURCES.iter().map(|(_, text)| text.matches(pattern).count()).sum::<usize>();
        assert_eq!(count(any), 18, "dispatched loops in {:?}", SOURCES.map(|(file, _)| file));
        for (file, text) in SOURCES {
            assert_eq!(text.matches(any).count(), text.matches(&ours).count(), "{file}: a loop for another target");
        }
        for feature in features(AVX512_TARGET).chain(AVX512_ADDED_BY_MULTIVERSION) {
            // A feature `has_feature` does not know would make every CPU run the portable loops.
            assert!(has_feature(feature).is_some(), "has_feature does not check `{feature}`: add it there");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(has_feature("sse9"), None, "an unknown feature is not claimed");
    }
}
