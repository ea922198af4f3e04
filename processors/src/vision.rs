//! The vision processor: camera images (`images`) in, one `defects` event per image out, from a
//! [`DefectModel`] (the ONNX defect detector in production).
//!
//! The runtime hands it runs of upcoming image events through [`Processor::prepare`] (at most
//! [`Processor::batch_limit`] at a time); it decodes and preprocesses them and runs the model once
//! per run. [`Processor::on_event`] then emits the prepared answer of its image (or runs a batch of
//! one when nothing was prepared, e.g. when called directly). Because the model gives every image
//! the same output bits whatever batch it is in, how the runtime batches never changes what is
//! derived; only the diagnostic headers (`processing_time_us`, `batch_size`) vary between runs.
//!
//! An image that cannot be decoded, or whose media type is not PNG or JPEG, is bad input: the
//! runtime dead-letters it with the reason and the stream goes on.

use std::collections::VecDeque;
use std::time::Instant;

use twinline_models::vision::{
    format_of_media_type, preprocess_into, DefectModel, DefectOutput, INPUT_LEN,
};
use twinline_models::ModelError;
use twinline_schemas::{BoundingBox, Defect, Image, Payload, Source, Topic};

use crate::{Emitter, Event, ProcessError, Processor};

const INPUTS: &[Topic] = &[Topic::Images];

/// Header carrying the measured per-image processing time (decode + preprocess + this image's
/// share of the batched inference), microseconds, ASCII decimal.
pub const HEADER_PROCESSING_TIME_US: &str = "processing_time_us";
/// Header carrying the size of the inference batch the image was in, ASCII decimal.
pub const HEADER_BATCH_SIZE: &str = "batch_size";

/// A prepared answer for the image at `(partition, offset)`.
struct Prepared {
    partition: u32,
    offset: u64,
    result: Result<DefectOutput, String>,
    micros: u64,
    batch: usize,
}

/// Images in, defects out; stateless between events (see the module docs).
pub struct VisionProcessor {
    model: Box<dyn DefectModel>,
    max_batch: usize,
    /// Reused model input, `max_batch * INPUT_LEN` values.
    input: Vec<f32>,
    answers: Vec<DefectOutput>,
    /// Per slot of the current batch: index into `prepared` of a decodable image.
    slots: Vec<usize>,
    prepared: VecDeque<Prepared>,
}

impl std::fmt::Debug for VisionProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionProcessor")
            .field("model", &self.model.name())
            .field("version", &self.model.version())
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl VisionProcessor {
    /// `max_batch` >= 1: the most images per inference call.
    pub fn new(model: Box<dyn DefectModel>, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        VisionProcessor {
            model,
            max_batch,
            input: Vec::with_capacity(max_batch * INPUT_LEN),
            answers: Vec::with_capacity(max_batch),
            slots: Vec::with_capacity(max_batch),
            prepared: VecDeque::new(),
        }
    }

    pub fn model_name(&self) -> &str {
        self.model.name()
    }

    pub fn model_version(&self) -> &str {
        self.model.version()
    }

    /// Decodes, preprocesses and runs `images` (at most `max_batch`), appending one prepared
    /// answer per image to `self.prepared`.
    fn run_batch(&mut self, images: &[(u32, u64, &Image)]) -> Result<(), ProcessError> {
        let start = Instant::now();
        let first = self.prepared.len();
        self.input.clear();
        self.slots.clear();
        for &(partition, offset, img) in images {
            let t0 = Instant::now();
            let result = if format_of_media_type(&img.media_type).is_none() {
                Err(format!(
                    "unsupported media type {:?} (image/png or image/jpeg)",
                    img.media_type
                ))
            } else {
                let at = self.input.len();
                self.input.resize(at + INPUT_LEN, 0.0);
                match preprocess_into(&img.data, &mut self.input[at..]) {
                    Ok(()) => {
                        self.slots.push(self.prepared.len());
                        Ok(DefectOutput {
                            class_id: 0,
                            confidence: 0.0,
                            probs: [0.0; 6],
                            bbox: [0.0; 4],
                        })
                    }
                    Err(e) => {
                        self.input.truncate(at);
                        Err(e.to_string())
                    }
                }
            };
            self.prepared.push_back(Prepared {
                partition,
                offset,
                result,
                micros: t0.elapsed().as_micros() as u64,
                batch: 0,
            });
        }
        let n = self.slots.len();
        let t_infer = Instant::now();
        let inferred = self.model.infer(&self.input, n, &mut self.answers);
        if inferred.is_err() || self.answers.len() != n {
            // No placeholder answer may outlive a failed batch.
            self.prepared.truncate(first);
        }
        inferred.map_err(|e| match e {
            // The model rejected our own tensor: a bug, not the image's fault.
            ModelError::Input(m) | ModelError::Mismatch(m) => ProcessError::Internal(m),
            other => ProcessError::External(other.to_string()),
        })?;
        if self.answers.len() != n {
            return Err(ProcessError::Internal(format!(
                "model answered {} of {n} images",
                self.answers.len()
            )));
        }
        let share = if n > 0 {
            t_infer.elapsed().as_micros() as u64 / n as u64
        } else {
            0
        };
        for (k, &slot) in self.slots.iter().enumerate() {
            let p = &mut self.prepared[slot];
            p.result = Ok(self.answers[k]);
            p.micros += share;
        }
        let total = images.len();
        for p in self.prepared.range_mut(first..) {
            p.batch = total;
        }
        tracing::trace!(
            images = total,
            decoded = n,
            micros = start.elapsed().as_micros() as u64,
            "vision batch"
        );
        Ok(())
    }

    /// Prepares `events` in runs of at most `max_batch`.
    fn prepare_events(&mut self, events: &[Event<'_>]) -> Result<(), ProcessError> {
        let mut run: Vec<(u32, u64, &Image)> = Vec::with_capacity(self.max_batch);
        for ev in events {
            if let Payload::Image(img) = ev.payload {
                run.push((ev.position.partition, ev.position.offset, img));
                if run.len() == self.max_batch {
                    self.run_batch(&run)?;
                    run.clear();
                }
            }
        }
        if !run.is_empty() {
            self.run_batch(&run)?;
        }
        Ok(())
    }

    /// The prepared answer for `(partition, offset)`, dropping older ones that were never asked
    /// for (their events were handled elsewhere, e.g. dead-lettered before reaching us).
    fn take_prepared(&mut self, partition: u32, offset: u64) -> Option<Prepared> {
        while let Some(front) = self.prepared.front() {
            if front.partition == partition && front.offset == offset {
                return self.prepared.pop_front();
            }
            if front.partition == partition && front.offset > offset {
                return None;
            }
            self.prepared.pop_front();
        }
        None
    }
}

impl Processor for VisionProcessor {
    fn name(&self) -> &'static str {
        "vision"
    }

    fn inputs(&self) -> &'static [Topic] {
        INPUTS
    }

    fn batch_limit(&self) -> usize {
        self.max_batch
    }

    fn prepare(&mut self, events: &[Event<'_>]) -> Result<(), ProcessError> {
        self.prepare_events(events)
    }

    fn on_event(&mut self, event: &Event<'_>, out: &mut Emitter) -> Result<(), ProcessError> {
        let Payload::Image(img) = event.payload else {
            return Ok(());
        };
        if img.machine_id.is_empty() || img.machine_id != event.key {
            return Err(ProcessError::BadInput(format!(
                "record key {:?} does not match machine_id {:?}",
                event.key, img.machine_id
            )));
        }
        let (partition, offset) = (event.position.partition, event.position.offset);
        let prepared = match self.take_prepared(partition, offset) {
            Some(p) => p,
            None => {
                // Not prepared (called directly, or the runtime did not batch): a batch of one,
                // whose answer is the last one prepared.
                self.prepare_events(std::slice::from_ref(event))?;
                self.prepared
                    .pop_back()
                    .filter(|p| p.partition == partition && p.offset == offset)
                    .ok_or_else(|| ProcessError::Internal("prepared image vanished".to_string()))?
            }
        };
        let answer = prepared.result.map_err(ProcessError::BadInput)?;
        let detected = answer.defect_detected();
        let [x, y, w, h] = answer.bbox;
        let defect = Defect {
            event_id: String::new(),
            source: Source::default(),
            machine_id: img.machine_id.clone(),
            part_id: img.part_id.clone(),
            event_time: img.event_time,
            defect_detected: detected,
            defect_type: answer.defect_type().to_string(),
            confidence: f64::from(answer.confidence),
            bbox: detected.then(|| BoundingBox {
                x: f64::from(x),
                y: f64::from(y),
                width: f64::from(w),
                height: f64::from(h),
            }),
            model_name: self.model.name().to_string(),
            model_version: self.model.version().to_string(),
            request_id: img.request_id.clone(),
        };
        out.emit_with_headers(
            Topic::Defects,
            img.machine_id.clone(),
            Payload::Defect(defect),
            vec![
                (
                    HEADER_PROCESSING_TIME_US.to_string(),
                    prepared.micros.to_string().into_bytes(),
                ),
                (
                    HEADER_BATCH_SIZE.to_string(),
                    prepared.batch.to_string().into_bytes(),
                ),
            ],
        );
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<u8>, ProcessError> {
        // No state: every image is judged on its own.
        Ok(Vec::new())
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), ProcessError> {
        if !bytes.is_empty() {
            return Err(ProcessError::Internal(format!(
                "vision keeps no state, checkpoint has {} bytes",
                bytes.len()
            )));
        }
        self.prepared.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Position;
    use image::{GrayImage, ImageEncoder, Luma};

    /// Answers from the mean grey level: dark images are "hole", bright ones "none".
    struct MeanModel;

    impl DefectModel for MeanModel {
        fn name(&self) -> &str {
            "mean"
        }
        fn version(&self) -> &str {
            "1"
        }
        fn infer(
            &mut self,
            input: &[f32],
            n: usize,
            out: &mut Vec<DefectOutput>,
        ) -> Result<(), ModelError> {
            out.clear();
            for img in input.chunks(INPUT_LEN).take(n) {
                let mean = img.iter().sum::<f32>() / INPUT_LEN as f32;
                let class_id = if mean < 0.0 { 3 } else { 0 };
                out.push(DefectOutput {
                    class_id,
                    confidence: 0.75,
                    probs: [0.0; 6],
                    bbox: [0.25, 0.5, 0.125, 0.0625],
                });
            }
            Ok(())
        }
    }

    fn png(level: u8, side: u32) -> Vec<u8> {
        let img = GrayImage::from_pixel(side, side, Luma([level]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), side, side, image::ExtendedColorType::L8)
            .unwrap();
        out
    }

    fn image(machine: &str, data: Vec<u8>, media_type: &str) -> Payload {
        Payload::Image(Image {
            machine_id: machine.into(),
            part_id: "P1".into(),
            media_type: media_type.into(),
            data,
            event_time: 1_000,
            request_id: Some("r1".into()),
        })
    }

    fn event<'a>(payload: &'a Payload, offset: u64) -> Event<'a> {
        Event {
            position: Position {
                topic: Topic::Images,
                partition: 0,
                offset,
                origin: offset,
            },
            event_time: 1_000,
            key: "M001",
            payload,
        }
    }

    /// One event per payload, at offsets 0, 1, 2, ...
    fn events_at_offsets(payloads: &[Payload]) -> Vec<Event<'_>> {
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| event(p, i as u64))
            .collect()
    }

    fn defect_of(out: &mut Emitter) -> (Defect, Vec<(String, Vec<u8>)>) {
        let mut all: Vec<_> = out.drain().collect();
        assert_eq!(all.len(), 1);
        let e = all.remove(0);
        assert_eq!(e.topic, Topic::Defects);
        assert_eq!(e.key, "M001");
        match e.payload {
            Payload::Defect(d) => (d, e.headers),
            other => panic!("emitted {other:?}"),
        }
    }

    #[test]
    fn emits_one_defect_per_image_with_model_and_request_ids() {
        let mut p = VisionProcessor::new(Box::new(MeanModel), 8);
        let dark = image("M001", png(10, 64), "image/png");
        let bright = image("M001", png(250, 80), "image/png");
        let mut out = Emitter::new();
        p.on_event(&event(&dark, 0), &mut out).unwrap();
        let (d, headers) = defect_of(&mut out);
        assert!(d.defect_detected);
        assert_eq!(d.defect_type, "hole");
        assert_eq!(d.confidence, 0.75);
        let b = d.bbox.expect("a detected defect has a box");
        assert_eq!((b.x, b.y, b.width, b.height), (0.25, 0.5, 0.125, 0.0625));
        assert_eq!(
            (d.model_name.as_str(), d.model_version.as_str()),
            ("mean", "1")
        );
        assert_eq!(d.request_id.as_deref(), Some("r1"));
        assert_eq!((d.part_id.as_str(), d.event_time), ("P1", 1_000));
        assert!(headers.iter().any(|(k, _)| k == HEADER_PROCESSING_TIME_US));
        p.on_event(&event(&bright, 1), &mut out).unwrap();
        let (d, _) = defect_of(&mut out);
        assert!(!d.defect_detected);
        assert_eq!(d.defect_type, "none");
        assert!(d.bbox.is_none(), "no box without a defect");
    }

    #[test]
    fn prepared_batches_give_the_same_defects_as_one_by_one() {
        let payloads: Vec<Payload> = (0..11u8)
            .map(|i| image("M001", png(i * 23, 64), "image/png"))
            .collect();
        let events = events_at_offsets(&payloads);
        let mut single = VisionProcessor::new(Box::new(MeanModel), 4);
        let mut batched = VisionProcessor::new(Box::new(MeanModel), 4);
        batched.prepare(&events).unwrap();
        let (mut a, mut b) = (Emitter::new(), Emitter::new());
        for e in &events {
            single.on_event(e, &mut a).unwrap();
            batched.on_event(e, &mut b).unwrap();
        }
        let strip = |em: &mut Emitter| -> Vec<Payload> { em.drain().map(|e| e.payload).collect() };
        assert_eq!(strip(&mut a), strip(&mut b));
        assert!(
            batched.prepared.is_empty(),
            "every prepared answer was used"
        );
    }

    #[test]
    fn batches_respect_the_limit() {
        let payloads: Vec<Payload> = (0..10u8)
            .map(|i| image("M001", png(i, 64), "image/png"))
            .collect();
        let events = events_at_offsets(&payloads);
        let mut p = VisionProcessor::new(Box::new(MeanModel), 4);
        p.prepare(&events).unwrap();
        assert_eq!(p.prepared.len(), 10);
        assert!(p.prepared.iter().all(|x| x.batch <= 4));
        assert_eq!(
            p.prepared.iter().map(|x| x.batch).collect::<Vec<_>>(),
            vec![4, 4, 4, 4, 4, 4, 4, 4, 2, 2]
        );
    }

    #[test]
    fn undecodable_and_unsupported_images_are_bad_input() {
        let mut p = VisionProcessor::new(Box::new(MeanModel), 8);
        let mut out = Emitter::new();
        let garbage = image("M001", b"\x89PNG\r\n\x1a\nnot really".to_vec(), "image/png");
        let gif = image("M001", b"GIF89a....".to_vec(), "image/gif");
        let empty = image("M001", Vec::new(), "image/jpeg");
        let good = image("M001", png(200, 64), "image/png");
        let events = [
            event(&garbage, 0),
            event(&gif, 1),
            event(&empty, 2),
            event(&good, 3),
        ];
        p.prepare(&events).unwrap();
        for (i, want) in [(0, "decode"), (1, "media type"), (2, "image")] {
            match p.on_event(&events[i], &mut out) {
                Err(ProcessError::BadInput(m)) => assert!(m.contains(want), "{m}"),
                other => panic!("event {i}: {other:?}"),
            }
            assert!(out.is_empty());
        }
        // The good image after the bad ones still gets its answer.
        p.on_event(&events[3], &mut out).unwrap();
        let (d, headers) = defect_of(&mut out);
        assert_eq!(d.defect_type, "none");
        let batch = headers
            .iter()
            .find(|(k, _)| k == HEADER_BATCH_SIZE)
            .unwrap();
        assert_eq!(batch.1, b"4");
    }

    /// Bad images between good ones: each good image still gets the answer for its own pixels
    /// (the decoded tensors are moved together before inference).
    #[test]
    fn bad_images_inside_a_batch_do_not_shift_the_answers_of_good_ones() {
        let payloads = [
            image("M001", png(10, 64), "image/png"),
            image("M001", b"\x89PNG\r\n\x1a\nnot really".to_vec(), "image/png"),
            image("M001", png(250, 64), "image/png"),
            image("M001", b"GIF89a....".to_vec(), "image/gif"),
            image("M001", png(5, 64), "image/png"),
            image("M001", png(240, 64), "image/png"),
        ];
        let events = events_at_offsets(&payloads);
        let mut batched = VisionProcessor::new(Box::new(MeanModel), 8);
        batched.prepare(&events).unwrap();
        let mut types = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let mut out = Emitter::new();
            let mut single = VisionProcessor::new(Box::new(MeanModel), 1);
            let mut alone = Emitter::new();
            match (
                batched.on_event(e, &mut out),
                single.on_event(e, &mut alone),
            ) {
                (Ok(()), Ok(())) => {
                    let (d, _) = defect_of(&mut out);
                    let (d1, _) = defect_of(&mut alone);
                    assert_eq!(d, d1, "image {i}");
                    types.push(d.defect_type);
                }
                (Err(ProcessError::BadInput(_)), Err(ProcessError::BadInput(_))) => {
                    types.push("bad".into())
                }
                other => panic!("image {i}: {other:?}"),
            }
        }
        assert_eq!(types, ["hole", "bad", "none", "bad", "hole", "none"]);
    }

    #[test]
    fn key_must_match_machine() {
        let mut p = VisionProcessor::new(Box::new(MeanModel), 8);
        let other = image("M002", png(1, 64), "image/png");
        let mut out = Emitter::new();
        assert!(matches!(
            p.on_event(&event(&other, 0), &mut out),
            Err(ProcessError::BadInput(_))
        ));
    }

    #[test]
    fn stateless_snapshot() {
        let mut p = VisionProcessor::new(Box::new(MeanModel), 8);
        assert!(p.snapshot().unwrap().is_empty());
        p.restore(&[]).unwrap();
        assert!(p.restore(&[1]).is_err());
    }
}
