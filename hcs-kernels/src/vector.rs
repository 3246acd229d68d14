//! Which compiled version of the hot loops this CPU runs.
//!
//! The innermost loops of registration, assembly, projection, the Gaussian and top-hat filters,
//! the percentiles, the QC focus score and the narrowing of planes to their storage type
//! (`hcs-vfs`) are compiled twice on x86-64 (`multiversion`): for the
//! baseline every x86-64 CPU has (SSE2) and for AVX + AVX2 + FMA; the first call picks the
//! version this CPU can run. Both do the same arithmetic in the same order, so they give the same
//! results; the portable one is slower. `hcs devices` says which one runs, and
//! `scripts/test-portable-loops.sh` runs the kernels' tests on an emulated CPU without AVX, so the
//! portable versions are tested, not only compiled.

/// The `multiversion` target every dispatched loop is compiled for, as its attribute spells it
/// (`#[multiversion(targets("x86_64+avx+avx2+fma"))]`; a test checks that each attribute
/// names this one). [`HotLoops::detect`] checks its features.
pub const HOT_LOOP_TARGET: &str = "x86_64+avx+avx2+fma";

/// The CPU features of [`HOT_LOOP_TARGET`] (after its architecture).
fn target_features() -> impl Iterator<Item = &'static str> {
    HOT_LOOP_TARGET.split('+').skip(1)
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
    /// Compiled for AVX + AVX2 + FMA (x86-64 CPUs since about 2013–2015).
    Avx2,
    /// The portable version: SSE2 on x86-64, the target's baseline elsewhere.
    Portable,
}

impl HotLoops {
    /// What this CPU runs: [`HotLoops::Avx2`] where it has every feature of [`HOT_LOOP_TARGET`]
    /// (the features the dispatched loops are compiled for), [`HotLoops::Portable`] otherwise.
    pub fn detect() -> Self {
        if target_features().all(|f| has_feature(f) == Some(true)) { HotLoops::Avx2 } else { HotLoops::Portable }
    }

    /// A short name (`avx2` or `portable`), as `hcs devices --json` prints it.
    pub fn name(self) -> &'static str {
        match self {
            HotLoops::Avx2 => "avx2",
            HotLoops::Portable => "portable",
        }
    }

    /// One sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            HotLoops::Avx2 => "hot loops run their AVX2 + FMA versions",
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
    const SOURCES: [(&str, &str); 7] = [
        ("hcs-vfs/src/plane.rs", include_str!("../../hcs-vfs/src/plane.rs")),
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
        let ours = format!("{any}\"{HOT_LOOP_TARGET}\"))]");
        let count = |pattern: &str| SOURCES.iter().map(|(_, text)| text.matches(pattern).count()).sum::<usize>();
        assert_eq!(count(any), 17, "dispatched loops in {:?}", SOURCES.map(|(file, _)| file));
        for (file, text) in SOURCES {
            assert_eq!(text.matches(any).count(), text.matches(&ours).count(), "{file}: a loop for another target");
        }
        for feature in target_features() {
            // A feature `has_feature` does not know would make every CPU run the portable loops.
            assert!(has_feature(feature).is_some(), "has_feature does not check `{feature}`: add it there");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(has_feature("sse9"), None, "an unknown feature is not claimed");
    }
}
