//! The reconstruction figure as a PNG (a raster twin of `reconstructions.svg`, for viewers and
//! papers that want pixels): per validation window, hidden tokens shaded grey, the original
//! signal in black, the reconstruction of the hidden samples in red. No text: the SVG and the
//! HTML report carry the captions.

struct Canvas {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![255; w * h * 3],
        }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
        for y in y0.round() as i64..y1.round() as i64 {
            for x in x0.round() as i64..x1.round() as i64 {
                self.put(x, y, c);
            }
        }
    }

    /// A line two pixels wide (steps of at most one pixel along the longer axis).
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let n = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for k in 0..=n {
            let t = k as f64 / n as f64;
            let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
            self.put(x.round() as i64, y.round() as i64, c);
            self.put(x.round() as i64, y.round() as i64 + 1, c);
        }
    }
}

/// Draw `rows` of (original, hidden tokens, reconstruction) as the bytes of a PNG file.
pub fn reconstructions(
    rows: &[(Vec<f32>, Vec<bool>, Vec<f32>)],
    samples_per_token: usize,
) -> Result<Vec<u8>, ::png::EncodingError> {
    let (w, row_h) = (900usize, 160usize);
    let mut c = Canvas::new(w, row_h * rows.len().max(1) + 10);
    for (k, (x, mask, recon)) in rows.iter().enumerate() {
        let top = 5.0 + (k * row_h) as f64;
        let n = x.len().max(1) as f64;
        let (lo, hi) = x
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = recon
            .iter()
            .enumerate()
            .filter(|(i, _)| mask.get(i / samples_per_token).copied().unwrap_or(false))
            .fold((lo, hi), |(a, b), (_, &v)| (a.min(v), b.max(v)));
        let sx = |i: f64| 10.0 + i / n * (w as f64 - 20.0);
        let sy = |v: f32| {
            top + row_h as f64
                - 10.0
                - ((v - lo) / (hi - lo).max(1e-6)) as f64 * (row_h as f64 - 20.0)
        };
        for (t, &m) in mask.iter().enumerate() {
            if m {
                c.rect(
                    sx((t * samples_per_token) as f64),
                    top,
                    sx(((t + 1) * samples_per_token) as f64),
                    top + row_h as f64 - 5.0,
                    [221, 221, 221],
                );
            }
        }
        for i in 1..x.len() {
            c.line(
                (sx(i as f64 - 1.0), sy(x[i - 1])),
                (sx(i as f64), sy(x[i])),
                [0, 0, 0],
            );
        }
        for i in 1..recon.len() {
            let hid = |j: usize| mask.get(j / samples_per_token).copied().unwrap_or(false);
            if hid(i - 1) && hid(i) {
                c.line(
                    (sx(i as f64 - 1.0), sy(recon[i - 1])),
                    (sx(i as f64), sy(recon[i])),
                    [214, 39, 40],
                );
            }
        }
        c.rect(
            0.0,
            top + row_h as f64 - 3.0,
            w as f64,
            top + row_h as f64 - 2.0,
            [180, 180, 180],
        );
    }
    let mut out = Vec::new();
    {
        let mut enc = ::png::Encoder::new(&mut out, c.w as u32, c.h as u32);
        enc.set_color(::png::ColorType::Rgb);
        enc.set_depth(::png::BitDepth::Eight);
        let mut wr = enc.write_header()?;
        wr.write_image_data(&c.px)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_png_decodes_to_its_size() {
        let rows = vec![(
            vec![0.0, 1.0, 0.0, -1.0],
            vec![false, true],
            vec![0.0, 0.9, 0.1, -1.0],
        )];
        let bytes = super::reconstructions(&rows, 2).unwrap();
        let dec = ::png::Decoder::new(std::io::Cursor::new(bytes));
        let r = dec.read_info().unwrap();
        assert_eq!((r.info().width, r.info().height), (900, 170));
    }
}
