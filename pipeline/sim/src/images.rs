//! Part images: the `ImageSource` trait and the built-in procedural grey surfaces with drawn defects.
//!
//! The vision work replaces the procedural source with photos; the simulator only needs an encoded
//! image and the ground-truth label of what is on it, so that is all the trait asks for.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, GrayImage, ImageEncoder, Luma};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Kinds of visible defect, named like `Defect.defect_type` in the schemas (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefectLabel {
    Scratch,
    Crack,
    Hole,
    Stain,
    Contamination,
}

impl DefectLabel {
    pub const ALL: [DefectLabel; 5] = [
        DefectLabel::Scratch,
        DefectLabel::Crack,
        DefectLabel::Hole,
        DefectLabel::Stain,
        DefectLabel::Contamination,
    ];

    /// The `defect_type` string used by the `defects` topic.
    pub fn as_str(self) -> &'static str {
        match self {
            DefectLabel::Scratch => "scratch",
            DefectLabel::Crack => "crack",
            DefectLabel::Hole => "hole",
            DefectLabel::Stain => "stain",
            DefectLabel::Contamination => "contamination",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where part images come from. Implementations must be deterministic given the `rng` they are
/// handed (the simulator passes a dedicated, seeded stream), so that runs replay byte for byte.
pub trait ImageSource: Send {
    /// One encoded image of a finished part. With probability `defect_probability` the part is
    /// defective; the returned label is the truth about what the image shows (`None` = clean).
    fn image(
        &mut self,
        rng: &mut dyn RngCore,
        defect_probability: f64,
    ) -> (Vec<u8>, Option<DefectLabel>);

    /// IANA media type of the bytes `image` returns.
    fn media_type(&self) -> &'static str {
        "image/png"
    }
}

/// Draws whether a part is defective and, if so, which defect (uniform over the five kinds).
pub fn draw_defect(rng: &mut dyn RngCore, defect_probability: f64) -> Option<DefectLabel> {
    if rng.gen::<f64>() < defect_probability {
        Some(DefectLabel::ALL[rng.gen_range(0..DefectLabel::ALL.len())])
    } else {
        None
    }
}

/// Renders a `size` x `size` grey machined surface (shading, tool marks, grain) with `defect`
/// painted on it.
pub fn render_surface(size: u32, rng: &mut dyn RngCore, defect: Option<DefectLabel>) -> GrayImage {
    let s = size as usize;
    let mut px = vec![0f32; s * s];
    // Low-frequency shading: bilinear interpolation of a coarse random grid.
    const G: usize = 5;
    let mut grid = [[0f32; G]; G];
    for row in grid.iter_mut() {
        for v in row.iter_mut() {
            *v = rng.gen_range(-18.0..18.0);
        }
    }
    let level: f32 = rng.gen_range(105.0..150.0);
    let period: f32 = rng.gen_range(3.0..7.0);
    let phase: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
    let marks_amp: f32 = rng.gen_range(2.0..6.0);
    let vertical = rng.gen::<bool>();
    let scale = (G - 1) as f32 / (s.max(2) - 1) as f32;
    for y in 0..s {
        for x in 0..s {
            let gx = x as f32 * scale;
            let gy = y as f32 * scale;
            let (x0, y0) = (gx.floor() as usize, gy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(G - 1), (y0 + 1).min(G - 1));
            let (fx, fy) = (gx - x0 as f32, gy - y0 as f32);
            let shade = grid[y0][x0] * (1.0 - fx) * (1.0 - fy)
                + grid[y0][x1] * fx * (1.0 - fy)
                + grid[y1][x0] * (1.0 - fx) * fy
                + grid[y1][x1] * fx * fy;
            let along = if vertical { x } else { y } as f32;
            let marks = marks_amp * (along * std::f32::consts::TAU / period + phase).sin();
            let grain = (rng.next_u32() & 0xff) as f32 / 255.0 * 12.0 - 6.0;
            px[y * s + x] = level + shade + marks + grain;
        }
    }
    if let Some(d) = defect {
        paint_defect(&mut px, s, rng, d);
    }
    GrayImage::from_fn(size, size, |x, y| {
        Luma([px[y as usize * s + x as usize].clamp(0.0, 255.0) as u8])
    })
}

fn put(px: &mut [f32], s: usize, x: f32, y: f32, f: impl Fn(f32) -> f32) {
    if x >= 0.0 && y >= 0.0 && (x as usize) < s && (y as usize) < s {
        let i = y as usize * s + x as usize;
        px[i] = f(px[i]);
    }
}

fn paint_defect(px: &mut [f32], s: usize, rng: &mut dyn RngCore, d: DefectLabel) {
    let sf = s as f32;
    let cx: f32 = rng.gen_range(0.2..0.8) * sf;
    let cy: f32 = rng.gen_range(0.2..0.8) * sf;
    match d {
        DefectLabel::Scratch => {
            // A long, thin, straight, bright line (metal exposed by a sliding burr).
            let len = rng.gen_range(0.4..0.9) * sf;
            let ang: f32 = rng.gen_range(0.0..std::f32::consts::PI);
            let (dx, dy) = (ang.cos(), ang.sin());
            let steps = (len * 2.0) as usize;
            for i in 0..steps {
                let t = i as f32 / 2.0 - len / 2.0;
                put(px, s, cx + t * dx, cy + t * dy, |v| v + 75.0);
            }
        }
        DefectLabel::Crack => {
            // A dark, jagged polyline.
            let (mut x, mut y) = (cx, cy);
            let mut ang: f32 = rng.gen_range(0.0..std::f32::consts::TAU);
            for _ in 0..rng.gen_range(5..9) {
                ang += rng.gen_range(-0.9..0.9);
                let seg = rng.gen_range(0.04..0.1) * sf;
                for i in 0..(seg * 2.0) as usize {
                    let t = i as f32 / 2.0;
                    put(px, s, x + t * ang.cos(), y + t * ang.sin(), |v| v * 0.3);
                }
                x += seg * ang.cos();
                y += seg * ang.sin();
            }
        }
        DefectLabel::Hole => {
            // A dark disc with a bright rim.
            let r = rng.gen_range(0.05..0.1) * sf;
            disc(
                px,
                s,
                cx,
                cy,
                r + 1.5,
                |v, d| if d > r { v + 50.0 } else { 18.0 },
            );
        }
        DefectLabel::Stain => {
            // A soft, large dark blob.
            let sigma = rng.gen_range(0.08..0.16) * sf;
            let depth = rng.gen_range(40.0..70.0);
            disc(px, s, cx, cy, 3.0 * sigma, |v, d| {
                v - depth * (-(d * d) / (2.0 * sigma * sigma)).exp()
            });
        }
        DefectLabel::Contamination => {
            // Several small dark specks scattered around a point.
            for _ in 0..rng.gen_range(5..12) {
                let x = cx + rng.gen_range(-0.2..0.2) * sf;
                let y = cy + rng.gen_range(-0.2..0.2) * sf;
                let r = rng.gen_range(0.8..2.2);
                disc(px, s, x, y, r, |_, _| 30.0);
            }
        }
    }
}

fn disc(px: &mut [f32], s: usize, cx: f32, cy: f32, r: f32, f: impl Fn(f32, f32) -> f32) {
    let (x0, x1) = ((cx - r).floor().max(0.0) as usize, (cx + r).ceil() as usize);
    let (y0, y1) = ((cy - r).floor().max(0.0) as usize, (cy + r).ceil() as usize);
    for y in y0..=y1.min(s - 1) {
        for x in x0..=x1.min(s - 1) {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            if d <= r {
                let i = y * s + x;
                px[i] = f(px[i], d);
            }
        }
    }
}

/// PNG-encodes a grey image.
pub fn encode_png(img: &GrayImage) -> Result<Vec<u8>, SimError> {
    let mut out = Vec::with_capacity(img.as_raw().len());
    // Fast compression: these images are small and encoding, not size, is what costs here.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::L8,
        )
        .map_err(|e| SimError::Image(e.to_string()))?;
    Ok(out)
}

/// The built-in source: procedural surfaces. With a pool, `pool_size` images per variant (clean
/// and each defect kind) are rendered and encoded once from `seed`, and parts pick from them;
/// that keeps PNG encoding off the hot path. Without a pool every image is rendered afresh.
pub struct ProceduralImages {
    size: u32,
    /// `pools[0]` = clean, `pools[1 + label.index()]` = that defect.
    pools: Vec<Vec<Vec<u8>>>,
    /// A valid clean image, returned if fresh encoding ever fails (it cannot for in-memory PNG).
    fallback: Vec<u8>,
}

impl ProceduralImages {
    pub fn new(size: u32, pool_size: usize, seed: u64) -> Result<Self, SimError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(crate::sim::STREAM_IMAGE_POOL);
        let mut pools = Vec::new();
        if pool_size > 0 {
            for variant in std::iter::once(None).chain(DefectLabel::ALL.into_iter().map(Some)) {
                let mut pool = Vec::with_capacity(pool_size);
                for _ in 0..pool_size {
                    pool.push(encode_png(&render_surface(size, &mut rng, variant))?);
                }
                pools.push(pool);
            }
        }
        let fallback = encode_png(&render_surface(size, &mut rng, None))?;
        Ok(Self {
            size,
            pools,
            fallback,
        })
    }
}

impl ImageSource for ProceduralImages {
    fn image(
        &mut self,
        rng: &mut dyn RngCore,
        defect_probability: f64,
    ) -> (Vec<u8>, Option<DefectLabel>) {
        let label = draw_defect(rng, defect_probability);
        if self.pools.is_empty() {
            let img = render_surface(self.size, rng, label);
            // Encoding into memory cannot fail for a valid buffer; if it ever did, a clean image
            // with a clean label keeps the truth consistent with the pixels.
            return match encode_png(&img) {
                Ok(png) => (png, label),
                Err(_) => (self.fallback.clone(), None),
            };
        }
        let pool = &self.pools[label.map_or(0, |l| 1 + l.index())];
        (pool[rng.gen_range(0..pool.len())].clone(), label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_defect_changes_a_local_patch_of_the_same_surface() {
        for label in DefectLabel::ALL {
            for seed in 0..8 {
                // Same seed => same texture draws; the defect is painted last, so the pixels
                // that differ are exactly the defect.
                let clean = render_surface(64, &mut ChaCha8Rng::seed_from_u64(seed), None);
                let bad = render_surface(64, &mut ChaCha8Rng::seed_from_u64(seed), Some(label));
                let changed = clean
                    .as_raw()
                    .iter()
                    .zip(bad.as_raw())
                    .filter(|(a, b)| a.abs_diff(**b) > 8)
                    .count();
                assert!(
                    (5..64 * 64 / 3).contains(&changed),
                    "{label:?} seed {seed}: {changed} pixels changed"
                );
            }
        }
    }

    #[test]
    fn pooled_and_fresh_sources_decode_and_respect_the_probability() {
        for pool in [0, 2] {
            let mut src = ProceduralImages::new(32, pool, 7).unwrap();
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            for p in [0.0, 1.0] {
                for _ in 0..10 {
                    let (png, label) = src.image(&mut rng, p);
                    assert_eq!(label.is_some(), p == 1.0);
                    let img =
                        image::load_from_memory_with_format(&png, image::ImageFormat::Png).unwrap();
                    assert_eq!((img.width(), img.height()), (32, 32));
                }
            }
        }
    }
}
