//! `ReadOptions::zero_copy`: leads stored as uncompressed doubles come back as views of the
//! mapped file, equal to what the converting path gives; compressed files fall back to it.

use std::path::Path;

use cardiaffect_io::{read, Format, ReadOptions};

fn both(
    path: &Path,
) -> (
    Vec<cardiaffect_io::Recording>,
    Vec<cardiaffect_io::Recording>,
) {
    let plain = read(path, Format::Auto, &ReadOptions::default()).unwrap();
    let zero = read(
        path,
        Format::Auto,
        &ReadOptions {
            zero_copy: true,
            ..ReadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(plain.output.skipped.len(), zero.output.skipped.len());
    assert_eq!(plain.output.warnings, zero.output.warnings);
    (plain.output.recordings, zero.output.recordings)
}

#[test]
fn views_equal_the_converted_samples_and_compressed_files_fall_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut views = 0;
    let mut fallbacks = 0;
    for path in [root.join("amigos"), root.join("dreamer/DREAMER.mat")] {
        let (plain, zero) = both(&path);
        assert_eq!(plain.len(), zero.len(), "{}", path.display());
        for (p, z) in plain.iter().zip(&zero) {
            assert!(p.stored.is_none());
            assert_eq!(
                (&p.subject, &p.trial, &p.lead),
                (&z.subject, &z.trial, &z.lead)
            );
            match &z.stored {
                Some(v) => {
                    assert!(v.is_view() && z.samples.is_empty());
                    let as_f32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
                    // Bit for bit, NaN included.
                    assert_eq!(
                        as_f32.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                        p.samples.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
                    );
                    views += 1;
                }
                None => {
                    assert_eq!(z.samples.len(), p.samples.len());
                    fallbacks += 1;
                }
            }
            // The other channels load the same either way.
            for (cp, cz) in p.channels.iter().zip(&z.channels).take(2) {
                assert_eq!(cp.name, cz.name);
                let (a, b) = (cp.load().unwrap(), cz.load().unwrap());
                assert_eq!(a.len(), b.len());
                assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
    }
    assert!(views > 0, "no uncompressed fixture gave a view");
    assert!(fallbacks > 0, "no compressed fixture fell back");
}
