//! The nominal tile layout a plate's stage positions give: the step between neighbouring sites,
//! in µm, as the median over every neighbour pair of one well (a stage records where it went,
//! give or take its own error, so the median of many steps is the layout it was told).

/// Median of `values` (`None` when empty).
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) })
}

/// The step between horizontal and vertical neighbours, `(x, y)` in the positions' unit, of a
/// `(rows, cols)` grid whose sites are numbered 1.. in raster order; `positions` holds `(site,
/// (x, y))` of one well. An axis the grid does not span (one column, one row) is `None`, as is
/// every axis when a site is missing or a position is not finite. Steps are magnitudes: stages
/// differ in which way their y (or x) axis points.
pub fn site_step(positions: &[(u32, (f64, f64))], (rows, cols): (u32, u32)) -> (Option<f64>, Option<f64>) {
    // Every site must be there: a grid the positions cannot fill (or a hostile HTD's huge one)
    // is refused before anything is allocated.
    let n = (rows as usize).checked_mul(cols as usize);
    let Some(n) = n.filter(|&n| n == positions.len()) else { return (None, None) };
    let mut at = vec![None; n];
    for &(site, (x, y)) in positions {
        let i = site.checked_sub(1).map(|i| i as usize).filter(|&i| i < n);
        match i {
            Some(i) if x.is_finite() && y.is_finite() => at[i] = Some((x, y)),
            _ => return (None, None),
        }
    }
    let Some(at) = at.into_iter().collect::<Option<Vec<(f64, f64)>>>() else {
        return (None, None);
    };
    let (rows, cols) = (rows as usize, cols as usize);
    let right = (0..rows).flat_map(|r| (0..cols.saturating_sub(1)).map(move |c| (r * cols + c, r * cols + c + 1)));
    let down = (0..rows.saturating_sub(1)).flat_map(|r| (0..cols).map(move |c| (r * cols + c, (r + 1) * cols + c)));
    let dx = median(right.map(|(a, b)| (at[b].0 - at[a].0).abs()).collect());
    let dy = median(down.map(|(a, b)| (at[b].1 - at[a].1).abs()).collect());
    (dx, dy)
}

/// The overlap fraction of neighbouring tiles, `(x, y)`, that a stage step in µm implies for
/// tiles of `tile = (height, width)` pixels of `pixel_size_um`: `1 − step / tile extent` on each
/// axis, to 10⁻⁴. `None` unless every number is known and the overlap lies in `[0, 0.9)` on both axes
/// (a step longer than a tile, or a tile's worth of overlap, is not a mosaic's layout). An axis
/// the grid does not span takes the other axis's overlap.
pub fn overlap_from_step(
    step_um: (Option<f64>, Option<f64>),
    pixel_size_um: Option<f64>,
    tile: Option<(usize, usize)>,
) -> Option<(f64, f64)> {
    let px = pixel_size_um.filter(|p| p.is_finite() && *p > 0.0)?;
    let (h, w) = tile?;
    let ox = step_um.0.map(|s| 1.0 - s / (px * w as f64));
    let oy = step_um.1.map(|s| 1.0 - s / (px * h as f64));
    let (ox, oy) = match (ox, oy) {
        (Some(x), Some(y)) => (x, y),
        (Some(x), None) => (x, x),
        (None, Some(y)) => (y, y),
        (None, None) => return None,
    };
    // Rounded to 10⁻⁴ (a tenth of a pixel of a 1000-pixel tile) before the range check, so the
    // value shown in the plan is the one checked: no more digits are known, it is only the
    // nominal layout registration starts from.
    let (ox, oy) = ((ox * 1e4).round() / 1e4, (oy * 1e4).round() / 1e4);
    let usable = |o: f64| (0.0..0.9).contains(&o);
    (usable(ox) && usable(oy)).then_some((ox, oy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_medians_of_neighbour_pairs_whatever_way_the_axes_point() {
        // 2×3 grid, 900 µm steps, y decreasing downwards, one site 4 µm off.
        let mut p: Vec<(u32, (f64, f64))> =
            (0..6).map(|i| (i + 1, (1000.0 + 900.0 * f64::from(i % 3), 5000.0 - 900.0 * f64::from(i / 3)))).collect();
        p[4].1.0 += 4.0;
        assert_eq!(site_step(&p, (2, 3)), (Some(900.0), Some(900.0)));
    }

    #[test]
    fn a_missing_site_or_a_single_row_says_what_it_cannot_know() {
        let row: Vec<(u32, (f64, f64))> = (0..3).map(|i| (i + 1, (900.0 * f64::from(i), 0.0))).collect();
        assert_eq!(site_step(&row, (1, 3)), (Some(900.0), None));
        assert_eq!(site_step(&row[..2], (1, 3)), (None, None));
        assert_eq!(site_step(&[(7, (0.0, 0.0))], (1, 1)), (None, None));
        assert_eq!(site_step(&[(1, (f64::NAN, 0.0))], (1, 1)), (None, None));
        assert_eq!(site_step(&row, (u32::MAX, u32::MAX)), (None, None), "no allocation for a hostile grid");
    }

    #[test]
    fn overlap_follows_from_step_pixel_size_and_tile() {
        // 1000 px tiles of 0.5 µm: a 450 µm step is a 10 % overlap.
        let o = overlap_from_step((Some(450.0), Some(400.0)), Some(0.5), Some((1000, 1000))).expect("known");
        assert!((o.0 - 0.1).abs() < 1e-12 && (o.1 - 0.2).abs() < 1e-12);
        // x goes with the width, y with the height: 800 × 1000 tiles, 450 µm and 360 µm steps.
        let o = overlap_from_step((Some(450.0), Some(360.0)), Some(0.5), Some((800, 1000))).expect("known");
        assert!((o.0 - 0.1).abs() < 1e-12 && (o.1 - 0.1).abs() < 1e-12, "{o:?}");
        assert_eq!(
            overlap_from_step((Some(450.0), None), Some(0.5), Some((1000, 1000))).map(|o| o.1 > 0.09),
            Some(true)
        );
        assert_eq!(overlap_from_step((Some(450.0), None), None, Some((1000, 1000))), None);
        assert_eq!(
            overlap_from_step((Some(600.0), None), Some(0.5), Some((1000, 1000))),
            None,
            "a gap, not an overlap"
        );
        assert_eq!(overlap_from_step((Some(10.0), None), Some(0.5), Some((1000, 1000))), None, "almost all overlap");
    }
}
