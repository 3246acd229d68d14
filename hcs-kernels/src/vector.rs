//! Which compiled version of the hot loops this CPU runs.
//!
//! The innermost loops of registration, assembly, projection, the Gaussian and top-hat filters,
//! the percentiles and the QC focus score are compiled twice on x86-64 (`multiversion`): for the
//! baseline every x86-64 CPU has (SSE2) and for AVX + AVX2 + FMA; the first call picks the
//! version this CPU can run. Both do the same arithmetic in the same order, so they give the same
//! results; the portable one is slower. `hcs devices` says which one runs, and
//! `scripts/test-portable-loops.sh` runs the kernels' tests on an emulated CPU without AVX, so the
//! portable versions are tested, not only compiled.

/// The version of the hot loops a CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotLoops {
    /// Compiled for AVX + AVX2 + FMA (x86-64 CPUs since about 2013–2015).
    Avx2,
    /// The portable version: SSE2 on x86-64, the target's baseline elsewhere.
    Portable,
}

impl HotLoops {
    /// What this CPU runs: [`HotLoops::Avx2`] where it has AVX, AVX2 and FMA (the features the
    /// dispatched loops are compiled for), [`HotLoops::Portable`] otherwise.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return HotLoops::Avx2;
        }
        HotLoops::Portable
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
