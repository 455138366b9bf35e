//! R-peak detection, NeuroKit2's default method.
//!
//! The absolute gradient of the (band-passed) ECG is smoothed with a 100 ms boxcar; QRS
//! complexes are where it exceeds 1.5 x its 750 ms average; complexes shorter than 0.4 x the
//! mean width are ignored; in each, the most prominent local maximum is the R peak, at least
//! 300 ms after the previous one.
//!
//! Reference: Makowski D. et al., "NeuroKit2: A Python toolbox for neurophysiological signal
//! processing", Behavior Research Methods 53, 1689-1696 (2021), method `neurokit` of
//! `ecg_findpeaks`. Detections are checked against NeuroKit2's own in this crate's tests.

/// `numpy.gradient`: central differences inside, one-sided at the ends.
fn gradient(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    match n {
        0 => vec![],
        1 => vec![0.0],
        _ => (0..n)
            .map(|i| {
                if i == 0 {
                    x[1] - x[0]
                } else if i == n - 1 {
                    x[n - 1] - x[n - 2]
                } else {
                    (x[i + 1] - x[i - 1]) / 2.0
                }
            })
            .collect(),
    }
}

/// `scipy.ndimage.uniform_filter1d(x, size, mode="nearest")`: a centred running mean with the
/// edges extended by their value.
pub fn boxcar_nearest(x: &[f64], size: usize) -> Vec<f64> {
    let n = x.len();
    if n == 0 || size <= 1 {
        return x.to_vec();
    }
    let left = size / 2;
    let at = |i: isize| -> f64 { x[i.clamp(0, n as isize - 1) as usize] };
    let mut out = Vec::with_capacity(n);
    let start = -(left as isize);
    let mut sum: f64 = (start..start + size as isize).map(at).sum();
    for i in 0..n as isize {
        out.push(sum / size as f64);
        sum += at(i + start + size as isize) - at(i + start);
    }
    out
}

/// Local maxima (plateaus give their middle) and their prominences, as
/// `scipy.signal.find_peaks(x, prominence=(None, None))`.
pub fn find_peaks_prominence(x: &[f64]) -> (Vec<usize>, Vec<f64>) {
    let n = x.len();
    let mut peaks = Vec::new();
    let mut i = 1;
    while i + 1 < n {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead + 1 < n && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                let left_edge = i;
                let right_edge = ahead - 1;
                peaks.push((left_edge + right_edge) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
    let prominences = peaks
        .iter()
        .map(|&p| {
            // Lowest point on each side before a higher sample (or the edge).
            let mut left_min = x[p];
            let mut j = p;
            while j > 0 && x[j - 1] <= x[p] {
                j -= 1;
                left_min = left_min.min(x[j]);
            }
            let mut right_min = x[p];
            let mut j = p;
            while j + 1 < n && x[j + 1] <= x[p] {
                j += 1;
                right_min = right_min.min(x[j]);
            }
            x[p] - left_min.max(right_min)
        })
        .collect();
    (peaks, prominences)
}

/// R-peak sample indices of a band-passed ECG (`ecg_findpeaks(method="neurokit")`).
pub fn ecg_peaks_neurokit(signal: &[f32], fs: f64) -> Vec<usize> {
    let x: Vec<f64> = signal.iter().map(|&v| v as f64).collect();
    let n = x.len();
    if n < 3 {
        return Vec::new();
    }
    let absgrad: Vec<f64> = gradient(&x).into_iter().map(f64::abs).collect();
    let smooth_kernel = ((0.1 * fs).round() as usize).clamp(1, n);
    let avg_kernel = ((0.75 * fs).round() as usize).clamp(1, n);
    let smoothgrad = boxcar_nearest(&absgrad, smooth_kernel);
    let avggrad = boxcar_nearest(&smoothgrad, avg_kernel);
    let mindelay = (fs * 0.3).round() as usize;
    let qrs: Vec<bool> = smoothgrad
        .iter()
        .zip(&avggrad)
        .map(|(s, a)| *s > 1.5 * a)
        .collect();
    let beg: Vec<usize> = (0..n - 1).filter(|&i| !qrs[i] && qrs[i + 1]).collect();
    let Some(&first_beg) = beg.first() else {
        return Vec::new();
    };
    let end: Vec<usize> = (0..n - 1)
        .filter(|&i| qrs[i] && !qrs[i + 1] && i > first_beg)
        .collect();
    let num = beg.len().min(end.len());
    if num == 0 {
        return Vec::new();
    }
    let min_len = (0..num).map(|i| end[i] as f64 - beg[i] as f64).sum::<f64>() / num as f64 * 0.4;
    let mut peaks: Vec<usize> = vec![0];
    for i in 0..num {
        let (b, e) = (beg[i], end[i]);
        if e <= b || ((e - b) as f64) < min_len {
            continue;
        }
        let (loc, prom) = find_peaks_prominence(&x[b..e]);
        if loc.is_empty() {
            continue;
        }
        // First index of the largest prominence, as numpy's argmax.
        let best = prom
            .iter()
            .enumerate()
            .fold(0, |bi, (j, &p)| if p > prom[bi] { j } else { bi });
        let peak = b + loc[best];
        if peak as isize - *peaks.last().unwrap_or(&0) as isize > mindelay as isize {
            peaks.push(peak);
        }
    }
    peaks.remove(0);
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxcar_matches_uniform_filter_nearest() {
        // scipy.ndimage.uniform_filter1d([1,2,3,4,5], 2, mode='nearest') = [1, 1.5, 2.5, 3.5, 4.5]
        assert_eq!(
            boxcar_nearest(&[1., 2., 3., 4., 5.], 2),
            vec![1., 1.5, 2.5, 3.5, 4.5]
        );
        // size 3 -> [1.333, 2, 3, 4, 4.667]
        let v = boxcar_nearest(&[1., 2., 3., 4., 5.], 3);
        assert!((v[0] - 4.0 / 3.0).abs() < 1e-12 && (v[4] - 14.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn find_peaks_prominence_like_scipy() {
        // scipy: find_peaks([0, 2, 1, 3, 3, 0, 1, 0], prominence=(None,None)) -> [1, 3, 6], [1, 3, 1]
        let (p, pr) = find_peaks_prominence(&[0., 2., 1., 3., 3., 0., 1., 0.]);
        assert_eq!(p, vec![1, 3, 6]);
        assert_eq!(pr, vec![1., 3., 1.]);
    }
}
