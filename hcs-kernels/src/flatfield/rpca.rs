//! Robust PCA, `D = L + S` with `L` low rank and `S` sparse, by the inexact augmented Lagrange
//! multiplier method (Lin, Chen & Ma 2010) — the decomposition BaSiC builds on. Rows of `D` are
//! images, columns pixels; singular value thresholding goes through the `n × n` Gram matrix
//! (`SVT(X, τ) = U·diag(max(σ−τ, 0)/σ)·Uᵀ·X`), so no full SVD is needed.

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use super::eigen::symmetric_eigen;

/// Settings of [`rpca`].
#[derive(Clone, Copy, Debug)]
pub struct RpcaSettings {
    /// Weight of the sparse term, as a multiple of the standard `1/√max(n, p)`.
    pub lambda_scale: f64,
    /// Largest rank kept in `L`.
    pub max_rank: usize,
    /// Iterations at most.
    pub max_iters: usize,
    /// Stop when `‖D − L − S‖_F / ‖D‖_F` falls below this.
    pub tol: f64,
}

/// The decomposition and how it ended.
#[derive(Clone, Debug)]
pub struct Rpca {
    /// The low-rank part.
    pub low_rank: Array2<f64>,
    /// The sparse part.
    pub sparse: Array2<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Final relative residual.
    pub residual: f64,
}

/// `X·Xᵀ` of a row-major `n × p` matrix.
fn gram(x: ArrayView2<'_, f64>) -> Vec<f64> {
    let n = x.nrows();
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i..n).map(move |j| (i, j))).collect();
    let dots: Vec<f64> = pairs.par_iter().map(|&(i, j)| x.row(i).dot(&x.row(j))).collect();
    let mut g = vec![0.0; n * n];
    for (&(i, j), d) in pairs.iter().zip(dots) {
        g[i * n + j] = d;
        g[j * n + i] = d;
    }
    g
}

/// Largest singular value (spectral norm) of `x`.
fn spectral_norm(x: ArrayView2<'_, f64>) -> f64 {
    let (values, _) = symmetric_eigen(gram(x), x.nrows());
    values.first().copied().unwrap_or(0.0).max(0.0).sqrt()
}

/// Singular value thresholding by `tau`, keeping at most `max_rank` components.
fn svt(x: ArrayView2<'_, f64>, tau: f64, max_rank: usize) -> Array2<f64> {
    let n = x.nrows();
    let (values, vectors) = symmetric_eigen(gram(x), n);
    // M = Σ_k shrink_k · u_k u_kᵀ over the kept components; the result is M·X.
    let mut m = Array2::<f64>::zeros((n, n));
    for (&lambda, u) in values.iter().zip(&vectors).take(max_rank) {
        let sigma = lambda.max(0.0).sqrt();
        if sigma <= tau || sigma == 0.0 {
            break;
        }
        let shrink = (sigma - tau) / sigma;
        for i in 0..n {
            for j in 0..n {
                m[(i, j)] += shrink * u[i] * u[j];
            }
        }
    }
    let mut out = Array2::<f64>::zeros(x.dim());
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
        for j in 0..n {
            let w = m[(i, j)];
            if w != 0.0 {
                row.scaled_add(w, &x.row(j));
            }
        }
    });
    out
}

/// Decompose `d` (rows = images).
pub fn rpca(d: ArrayView2<'_, f64>, s: RpcaSettings) -> Rpca {
    let (n, p) = d.dim();
    let lambda = s.lambda_scale / (n.max(p) as f64).sqrt();
    let norm_fro = d.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut low_rank = Array2::<f64>::zeros((n, p));
    let mut sparse = Array2::<f64>::zeros((n, p));
    if norm_fro == 0.0 {
        return Rpca { low_rank, sparse, iterations: 0, residual: 0.0 };
    }
    let norm_two = spectral_norm(d);
    let norm_inf = d.iter().fold(0.0f64, |m, v| m.max(v.abs())) / lambda;
    let mut y = d.mapv(|v| v / norm_two.max(norm_inf));
    let mut mu = 1.25 / norm_two;
    let mu_max = mu * 1e7;
    let rho = 1.5;
    let mut residual = 1.0;
    let mut iterations = 0;
    while iterations < s.max_iters {
        iterations += 1;
        let mut target = d.to_owned();
        Zip::from(&mut target).and(&sparse).and(&y).par_for_each(|t, &sv, &yv| *t = *t - sv + yv / mu);
        low_rank = svt(target.view(), 1.0 / mu, s.max_rank);
        let shrink = lambda / mu;
        Zip::from(&mut sparse).and(d).and(&low_rank).and(&y).par_for_each(|sv, &dv, &lv, &yv| {
            let r = dv - lv + yv / mu;
            *sv = r.signum() * (r.abs() - shrink).max(0.0);
        });
        let mut z2 = 0.0;
        Zip::from(&mut y).and(d).and(&low_rank).and(&sparse).for_each(|yv, &dv, &lv, &sv| {
            let z = dv - lv - sv;
            z2 += z * z;
            *yv += mu * z;
        });
        residual = z2.sqrt() / norm_fro;
        mu = (mu * rho).min(mu_max);
        if residual < s.tol {
            break;
        }
    }
    Rpca { low_rank, sparse, iterations, residual }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_a_rank_one_matrix_from_sparse_spikes() {
        let (n, p) = (8, 400);
        let low =
            Array2::from_shape_fn((n, p), |(i, j)| (1.0 + i as f64 * 0.1) * (50.0 + (j as f64 / 40.0).sin() * 10.0));
        let mut d = low.clone();
        for k in 0..40 {
            d[(k % n, (k * 37) % p)] += 500.0;
        }
        let r = rpca(d.view(), RpcaSettings { lambda_scale: 1.0, max_rank: 3, max_iters: 500, tol: 1e-7 });
        assert!(r.residual < 1e-7, "converged: {} after {}", r.residual, r.iterations);
        let err = (&r.low_rank - &low).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-3 * 60.0, "low-rank part recovered within 0.1 %: {err}");
    }
}
