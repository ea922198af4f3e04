//! Part images: the `ImageSource` trait, the built-in procedural grey surfaces with drawn defects,
//! and a labelled image library read from disk (the vision model's held-out simulator set).
//!
//! The vision work replaces the procedural source with photos; the simulator only needs an encoded
//! image and the ground-truth label of what is on it, so that is all the trait asks for.

use std::path::{Path, PathBuf};

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
        let pool = &self.pools[slot(label)];
        (pool[rng.gen_range(0..pool.len())].clone(), label)
    }
}

/// Pool index of a label in the sources' per-class pools: 0 = clean, then `DefectLabel::ALL` order.
fn slot(label: Option<DefectLabel>) -> usize {
    label.map_or(0, |l| 1 + l.index())
}

/// Number of classes a part can show: clean plus every `DefectLabel`.
const CLASSES: usize = 1 + DefectLabel::ALL.len();

/// The label-file name of the class in pool `slot` (`none` for clean).
fn class_name(slot: usize) -> &'static str {
    match slot {
        0 => "none",
        i => DefectLabel::ALL[i - 1].as_str(),
    }
}

/// Maps a label-file `type` to a class: `Some(None)` = clean, `None` = not a class we know.
fn parse_class(kind: &str) -> Option<Option<DefectLabel>> {
    if kind == "none" {
        return Some(None);
    }
    DefectLabel::ALL
        .into_iter()
        .find(|l| l.as_str() == kind)
        .map(Some)
}

/// The eight bytes every PNG file starts with.
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// One image of a [`LibraryImages`] library.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryImage {
    /// File name as listed in `labels.json`, relative to the library directory.
    pub file: String,
    /// The file's bytes exactly as stored: never re-encoded, so a served image can be traced back
    /// to its file byte for byte.
    pub bytes: Vec<u8>,
    /// The defect's bounding box `[x, y, w, h]` as listed (the simset stores fractions of the image
    /// side); `None` for clean images or when the library gives none.
    pub bbox: Option<[f64; 4]>,
}

/// `labels.json` as far as the simulator reads it; other keys (`class_order`, `backgrounds`,
/// `seed`, `class_id`, ...) are ignored so that the vision side can add metadata freely.
#[derive(Deserialize)]
struct LabelsFile {
    size: u32,
    images: Vec<LabelEntry>,
}

#[derive(Deserialize)]
struct LabelEntry {
    file: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    bbox: Option<[f64; 4]>,
}

/// An image source serving a labelled library from disk, such as the vision model's held-out
/// simulator set `models/vision/simset/`: `labels.json` plus the PNG files it lists. Everything
/// is read into memory once by [`LibraryImages::load`]; parts then pick from it, so the simulator
/// never touches the disk while running.
///
/// Whether a part is defective and which defect it shows is drawn exactly as for
/// [`ProceduralImages`] ([`draw_defect`]), then one image of that class is picked uniformly, so the
/// truth label of every part is the library's label of the image it carries.
#[derive(Debug, Clone)]
pub struct LibraryImages {
    dir: PathBuf,
    size: u32,
    /// `pools[slot(label)]`, in `labels.json` order; none is empty after `load`.
    pools: Vec<Vec<LibraryImage>>,
}

/// The name of the label file inside a library directory.
const LIBRARY_LABELS_FILE: &str = "labels.json";

/// Reads a whole library file, telling a missing file (wrong path, incomplete library) from
/// other I/O failures.
fn read_library_file(path: &Path) -> Result<Vec<u8>, SimError> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SimError::LibraryMissing {
            path: path.to_path_buf(),
        },
        _ => SimError::LibraryRead {
            path: path.to_path_buf(),
            source: e,
        },
    })
}

impl LibraryImages {
    /// Reads `dir/labels.json` and every PNG it lists. Fails if the directory, the label file or a
    /// listed file is missing, if a `type` is not `none` or a [`DefectLabel`] name, if a listed
    /// file is not a PNG, or if any of the six classes has no image (a part of that class could
    /// not be shown).
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        // Checked apart from labels.json so that a wrong `image_library` path names the directory.
        if !dir.is_dir() {
            return Err(SimError::LibraryMissing {
                path: dir.to_path_buf(),
            });
        }
        let labels_path = dir.join(LIBRARY_LABELS_FILE);
        let labels: LabelsFile = serde_json::from_slice(&read_library_file(&labels_path)?)
            .map_err(|source| SimError::LibraryLabels {
                path: labels_path.clone(),
                source,
            })?;
        let mut pools: Vec<Vec<LibraryImage>> = vec![Vec::new(); CLASSES];
        for entry in labels.images {
            // The type is checked before the file is read so that a typo is reported as such,
            // not hidden behind an I/O error.
            let label = parse_class(&entry.kind).ok_or_else(|| SimError::LibraryUnknownType {
                file: entry.file.clone(),
                kind: entry.kind.clone(),
            })?;
            let path = dir.join(&entry.file);
            let bytes = read_library_file(&path)?;
            // The bytes are served as they are under `image/png`; anything else would reach the
            // vision processor mislabelled.
            if !bytes.starts_with(&PNG_SIGNATURE) {
                return Err(SimError::LibraryNotPng { path });
            }
            pools[slot(label)].push(LibraryImage {
                file: entry.file,
                bytes,
                bbox: entry.bbox,
            });
        }
        if let Some(empty) = pools.iter().position(Vec::is_empty) {
            return Err(SimError::LibraryEmptyClass {
                dir: dir.to_path_buf(),
                class: class_name(empty),
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            size: labels.size,
            pools,
        })
    }

    /// The directory the library was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Image side in pixels as `labels.json` states it. The images are served as they are; the
    /// simulator's `image_size` does not apply to them.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The images of one class (`None` = clean), in `labels.json` order; never empty.
    pub fn images(&self, label: Option<DefectLabel>) -> &[LibraryImage] {
        &self.pools[slot(label)]
    }

    /// Every image with its class, clean first, then the defects in `DefectLabel::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Option<DefectLabel>, &LibraryImage)> + '_ {
        std::iter::once(None)
            .chain(DefectLabel::ALL.into_iter().map(Some))
            .flat_map(move |label| self.images(label).iter().map(move |img| (label, img)))
    }

    /// The library entry whose bytes are `bytes` and its class: traces a served image back to its
    /// file and truth. A linear scan, meant for tests and evaluation, not the hot path.
    pub fn lookup(&self, bytes: &[u8]) -> Option<(Option<DefectLabel>, &LibraryImage)> {
        self.iter().find(|(_, img)| img.bytes == bytes)
    }

    /// The bounding box listed for the image whose bytes are `bytes` (see [`LibraryImage::bbox`]).
    pub fn bbox_of(&self, bytes: &[u8]) -> Option<[f64; 4]> {
        self.lookup(bytes).and_then(|(_, img)| img.bbox)
    }
}

impl ImageSource for LibraryImages {
    fn image(
        &mut self,
        rng: &mut dyn RngCore,
        defect_probability: f64,
    ) -> (Vec<u8>, Option<DefectLabel>) {
        let label = draw_defect(rng, defect_probability);
        let pool = &self.pools[slot(label)];
        (pool[rng.gen_range(0..pool.len())].bytes.clone(), label)
    }

    fn media_type(&self) -> &'static str {
        "image/png"
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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

    /// This package's directory: cargo's value at run time, which stays right when the binary was built
    /// from another checkout sharing the target directory; the compile-time value otherwise.
    fn package_dir() -> PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
    }

    fn simset() -> PathBuf {
        package_dir().join("../../models/vision/simset")
    }

    /// `labels.json` read independently of the loader, as `(file, type)` pairs.
    fn simset_entries() -> Vec<(String, String)> {
        let raw = std::fs::read(simset().join("labels.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["file"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn simset_loads_every_listed_file_into_its_class() {
        let lib = LibraryImages::load(&simset()).unwrap();
        let entries = simset_entries();
        assert!(!entries.is_empty());
        assert_eq!(lib.iter().count(), entries.len());
        assert_eq!(lib.size(), 64);
        for slot in 0..CLASSES {
            let label = parse_class(class_name(slot)).unwrap();
            let want: Vec<&str> = entries
                .iter()
                .filter(|(_, t)| t == class_name(slot))
                .map(|(f, _)| f.as_str())
                .collect();
            let got: Vec<&str> = lib.images(label).iter().map(|i| i.file.as_str()).collect();
            assert!(!got.is_empty(), "class {} is empty", class_name(slot));
            assert_eq!(got, want, "class {}", class_name(slot));
        }
        for (label, img) in lib.iter() {
            // Bytes are the file's, not a re-encoding.
            assert_eq!(img.bytes, std::fs::read(simset().join(&img.file)).unwrap());
            // Defects carry a box; clean images carry none.
            assert_eq!(img.bbox.is_some(), label.is_some(), "{}", img.file);
        }
        let first = &lib.images(None)[0];
        assert_eq!(
            lib.lookup(&first.bytes).map(|(l, i)| (l, &i.file)),
            Some((None, &first.file))
        );
        assert_eq!(lib.lookup(b"not in the library"), None);
    }

    #[test]
    fn library_draws_follow_the_probability_and_come_from_the_label_pool() {
        let mut lib = LibraryImages::load(&simset()).unwrap();
        let truth: HashMap<String, String> = simset_entries().into_iter().collect();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 20_000;
        let mut per_class = [0usize; CLASSES];
        let mut served: HashMap<String, Vec<u8>> = HashMap::new();
        for _ in 0..n {
            let (bytes, label) = lib.image(&mut rng, 0.3);
            per_class[slot(label)] += 1;
            // The bytes belong to the drawn label's pool, and labels.json agrees on the class.
            let img = lib
                .images(label)
                .iter()
                .find(|i| i.bytes == bytes)
                .expect("bytes from the label's pool");
            assert_eq!(truth[&img.file], class_name(slot(label)), "{}", img.file);
            served.entry(img.file.clone()).or_insert(bytes);
        }
        let defective = (n - per_class[0]) as f64 / n as f64;
        // Binomial sd is ~0.003 at n = 20 000: 0.02 is a six-sigma band.
        assert!(
            (defective - 0.3).abs() < 0.02,
            "defective share {defective}"
        );
        let defects = (n - per_class[0]) as f64;
        for (i, &c) in per_class.iter().enumerate().skip(1) {
            // Uniform over five kinds: 0.2 of the defects each (sd ~0.005).
            let share = c as f64 / defects;
            assert!((0.17..0.23).contains(&share), "{}: {share}", class_name(i));
        }
        // ~1200 draws per class over ~34 images: a uniform pick serves every image.
        assert_eq!(served.len(), lib.iter().count());
        for (file, bytes) in &served {
            let img = image::load_from_memory(bytes).unwrap();
            assert_eq!((img.width(), img.height()), (64, 64), "{file}");
        }
        for _ in 0..2_000 {
            assert_eq!(lib.image(&mut rng, 0.0).1, None);
            assert!(lib.image(&mut rng, 1.0).1.is_some());
        }
        assert_eq!(lib.media_type(), "image/png");
    }

    #[test]
    fn library_draws_are_deterministic_given_the_rng() {
        let mut lib = LibraryImages::load(&simset()).unwrap();
        let mut draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..500)
                .map(|_| lib.image(&mut rng, 0.5))
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (draw(5), draw(5), draw(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// Writes a small valid library (one image per class) into a fresh temp dir, then lets
    /// `edit` change the label entries before `labels.json` is written.
    fn temp_library(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut entries = Vec::new();
        for slot in 0..CLASSES {
            let name = class_name(slot);
            let label = parse_class(name).unwrap();
            let file = format!("img_{slot}_{name}.png");
            let png = encode_png(&render_surface(16, &mut rng, label)).unwrap();
            std::fs::write(dir.path().join(&file), png).unwrap();
            let bbox = label.map(|_| [0.25, 0.25, 0.5, 0.5]);
            entries.push(serde_json::json!({"file": file, "type": name, "bbox": bbox}));
        }
        edit(&mut entries);
        let labels = serde_json::json!({"size": 16, "images": entries});
        std::fs::write(dir.path().join("labels.json"), labels.to_string()).unwrap();
        dir
    }

    #[test]
    fn a_valid_temp_library_loads() {
        // Guards the error tests below: each fails only because of its own edit.
        let dir = temp_library(|_| {});
        let lib = LibraryImages::load(dir.path()).unwrap();
        assert_eq!((lib.size(), lib.iter().count()), (16, CLASSES));
        let scratch = &lib.images(Some(DefectLabel::Scratch))[0];
        assert_eq!(lib.bbox_of(&scratch.bytes), Some([0.25, 0.25, 0.5, 0.5]));
        assert_eq!(lib.bbox_of(&lib.images(None)[0].bytes), None);
    }

    #[test]
    fn a_missing_directory_or_label_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = dir.path().join("nowhere");
        match LibraryImages::load(&nowhere) {
            Err(SimError::LibraryMissing { path }) => assert_eq!(path, nowhere),
            other => panic!("unexpected {other:?}"),
        }
        match LibraryImages::load(dir.path()) {
            Err(e @ SimError::LibraryMissing { .. }) => {
                assert!(e.to_string().contains("labels.json"), "{e}")
            }
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(dir.path().join("labels.json"), "{\"images\": 3}").unwrap();
        assert!(matches!(
            LibraryImages::load(dir.path()),
            Err(SimError::LibraryLabels { .. })
        ));
    }

    #[test]
    fn a_listed_file_that_is_missing_is_named() {
        let dir =
            temp_library(|e| e.push(serde_json::json!({"file": "gone_42.png", "type": "hole"})));
        match LibraryImages::load(dir.path()) {
            Err(e @ SimError::LibraryMissing { .. }) => {
                assert!(e.to_string().contains("gone_42.png"), "{e}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn an_unknown_type_is_rejected() {
        let dir = temp_library(|e| e[2]["type"] = "dent".into());
        match LibraryImages::load(dir.path()) {
            Err(SimError::LibraryUnknownType { file, kind }) => {
                assert_eq!((file.as_str(), kind.as_str()), ("img_2_crack.png", "dent"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_class_without_images_is_rejected() {
        let dir = temp_library(|e| e.retain(|x| x["type"] != "contamination"));
        match LibraryImages::load(dir.path()) {
            Err(SimError::LibraryEmptyClass { class, .. }) => assert_eq!(class, "contamination"),
            other => panic!("unexpected {other:?}"),
        }
        let dir = temp_library(|e| e.retain(|x| x["type"] != "none"));
        match LibraryImages::load(dir.path()) {
            Err(SimError::LibraryEmptyClass { class, .. }) => assert_eq!(class, "none"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_a_png_is_rejected() {
        let dir = temp_library(|_| {});
        std::fs::write(
            dir.path().join("img_3_hole.png"),
            b"GIF89a not a png at all",
        )
        .unwrap();
        match LibraryImages::load(dir.path()) {
            Err(SimError::LibraryNotPng { path }) => assert!(path.ends_with("img_3_hole.png")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
