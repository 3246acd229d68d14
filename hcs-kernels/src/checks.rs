//! Parameter guards shared by the kernels: every kernel checks its parameter values and the
//! sizes it derives from them before it allocates, and refuses what it cannot run with a
//! [`KernelError::BadParameter`] naming the parameter and the accepted range — never a panic, an
//! abort or an allocation without bound. (Declared ranges on `#[param]` are the first line of
//! defence; these guards are the second, and also cover ranges that depend on the input.)

use crate::error::KernelError;

/// Most histogram bins a kernel allocates (2²⁰).
pub const MAX_BINS: usize = 1 << 20;

/// Most σ values of a scale space (each one is a full-size plane per slice).
pub const MAX_SCALES: usize = 1000;

/// `Err(BadParameter)` with `message`.
pub fn bad<T>(message: String) -> Result<T, KernelError> {
    Err(KernelError::BadParameter(message))
}

/// A finite number.
pub fn finite(name: &str, value: f64) -> Result<(), KernelError> {
    if value.is_finite() { Ok(()) } else { bad(format!("{name} must be a finite number, got {value}")) }
}

/// A finite number in `lo..=hi`.
pub fn float_in(name: &str, value: f64, lo: f64, hi: f64) -> Result<(), KernelError> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        bad(format!("{name} must be a finite number in {lo}..={hi}, got {value}"))
    }
}

/// An integer in `lo..=hi`; `what` says where `hi` comes from (e.g. "the larger side of the
/// image"), or is empty.
pub fn int_in(name: &str, value: usize, lo: usize, hi: usize, what: &str) -> Result<(), KernelError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else if what.is_empty() {
        bad(format!("{name} must be in {lo}..={hi}, got {value}"))
    } else {
        bad(format!("{name} must be in {lo}..={hi} ({what}), got {value}"))
    }
}

/// The larger side of a `h × w` plane, at least 1: the bound of every size in pixels a kernel
/// derives from a parameter (a blur or footprint wider than the image is meaningless, and its
/// buffers would grow with the parameter instead of the image).
pub fn larger_side(h: usize, w: usize) -> usize {
    h.max(w).max(1)
}

/// A blur width (σ in pixels) for a `h × w` plane: finite, non-negative, and at most the larger
/// side of the plane (the Gaussian kernel then has at most `8·side + 1` taps).
pub fn sigma_for(name: &str, sigma: f64, (h, w): (usize, usize)) -> Result<(), KernelError> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return bad(format!("{name} must be a non-negative number, got {sigma}"));
    }
    let side = larger_side(h, w);
    if sigma > side as f64 {
        return bad(format!("{name} must be in 0..={side} (the larger side of the image, pixels), got {sigma}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_name_the_parameter_and_the_range() {
        assert!(finite("x", 1.0).is_ok());
        assert_eq!(
            float_in("overlap", f64::NAN, 0.0, 1.0).map_err(|e| e.to_string()),
            Err("overlap must be a finite number in 0..=1, got NaN".into())
        );
        assert_eq!(int_in("bins", 0, 1, 8, "").map_err(|e| e.to_string()), Err("bins must be in 1..=8, got 0".into()));
        assert!(sigma_for("sigma", 48.0, (32, 48)).is_ok());
        assert!(sigma_for("sigma", 48.5, (32, 48)).is_err());
        assert!(sigma_for("sigma", 1e308, (32, 48)).is_err());
        assert!(sigma_for("sigma", -2.0, (32, 48)).is_err());
    }
}
