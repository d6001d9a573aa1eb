use super::scan::frame_interval;
use super::*;
use image::Luma;
use std::time::Duration;

fn scene(w: u32, h: u32) -> GrayImage {
    // Smooth gradients plus a dark square: JPEG keeps these within a few grey levels.
    GrayImage::from_fn(w, h, |x, y| {
        if (40..80).contains(&x) && (30..60).contains(&y) {
            Luma([20])
        } else {
            Luma([(60 + x * 120 / w + y * 60 / h) as u8])
        }
    })
}

fn jpeg(img: &GrayImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
        .encode_image(&image::DynamicImage::ImageLuma8(img.clone()).to_rgb8())
        .expect("encode");
    out
}

fn mean_abs_diff(a: &GrayImage, b: &GrayImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| u64::from(p.0[0].abs_diff(q.0[0])))
        .sum();
    s as f64 / f64::from(a.width() * a.height())
}

#[test]
fn mjpeg_frames_decode_through_nokhwa_to_the_picture_they_hold() {
    let img = scene(160, 120);
    let got = luma(&decode_raw(160, 120, &jpeg(&img), PixelFormat::Mjpeg).expect("decodes"));
    assert_eq!(got.dimensions(), (160, 120));
    let d = mean_abs_diff(&img, &got);
    assert!(d < 3.0, "mean difference {d} grey levels");
}

#[test]
fn yuyv_frames_decode_to_their_luma() {
    let img = scene(160, 120);
    // YUYV 4:2:2: Y0 U Y1 V per pixel pair; neutral chroma.
    let mut raw = Vec::with_capacity(160 * 120 * 2);
    for p in img.pixels() {
        raw.push(p.0[0]);
        raw.push(128);
    }
    let got = luma(&decode_raw(160, 120, &raw, PixelFormat::Yuyv).expect("decodes"));
    assert_eq!(got.dimensions(), (160, 120));
    // BT.601 studio range maps Y 16..235 onto 0..255, so compare after that scaling.
    let expect = GrayImage::from_fn(160, 120, |x, y| {
        let v = (f64::from(img.get_pixel(x, y).0[0]) - 16.0) * 255.0 / 219.0;
        Luma([v.clamp(0.0, 255.0) as u8])
    });
    let d = mean_abs_diff(&expect, &got).min(mean_abs_diff(&img, &got));
    assert!(d < 4.0, "mean difference {d} grey levels");
}

#[test]
fn broken_frames_are_errors_not_panics() {
    assert!(decode_raw(160, 120, &[0u8; 100], PixelFormat::Yuyv).is_err());
    assert!(decode_raw(160, 120, b"\xFF\xD8 not a jpeg", PixelFormat::Mjpeg).is_err());
    assert!(decode_raw(160, 120, &[], PixelFormat::Mjpeg).is_err());
    let mut truncated = jpeg(&scene(160, 120));
    truncated.truncate(truncated.len() / 3);
    // A truncated JPEG either fails or decodes to a (partly grey) frame: it must not panic.
    let _ = decode_raw(160, 120, &truncated, PixelFormat::Mjpeg);
}

#[test]
fn an_mjpeg_stream_file_splits_into_its_frames_and_replays_in_a_loop() {
    let a = scene(64, 48);
    let b = GrayImage::from_pixel(64, 48, Luma([200]));
    let mut stream = b"junk before".to_vec();
    stream.extend(jpeg(&a));
    stream.extend(b"\r\n--boundary\r\n");
    stream.extend(jpeg(&b));
    stream.extend(b"\xFF\xD8 an unfinished frame");
    assert_eq!(split_mjpeg(&stream).len(), 2);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("clip.mjpeg");
    std::fs::write(&path, &stream).expect("write");
    let mut src = ReplaySource::open(&path).expect("opens");
    assert_eq!(src.len(), 2);
    let f1 = luma(&src.next_frame().expect("frame 1"));
    let f2 = luma(&src.next_frame().expect("frame 2"));
    let f3 = luma(&src.next_frame().expect("frame 3 = frame 1 again"));
    assert!(mean_abs_diff(&f1, &a) < 3.0);
    assert!(mean_abs_diff(&f2, &b) < 3.0);
    assert_eq!(f1, f3);
}

#[test]
fn a_folder_replays_its_images_in_name_order_and_an_empty_one_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    GrayImage::from_pixel(8, 8, Luma([10]))
        .save(dir.path().join("b.png"))
        .expect("save");
    GrayImage::from_pixel(8, 8, Luma([250]))
        .save(dir.path().join("a.png"))
        .expect("save");
    std::fs::write(dir.path().join("notes.txt"), "not a frame").expect("write");
    let mut src = ReplaySource::open(dir.path()).expect("opens");
    assert_eq!(src.len(), 2);
    assert_eq!(src.next_frame().expect("a").get_pixel(0, 0).0[0], 250);
    assert_eq!(src.next_frame().expect("b").get_pixel(0, 0).0[0], 10);
    assert_eq!(src.next_frame().expect("a again").get_pixel(0, 0).0[0], 250);

    let empty = tempfile::tempdir().expect("tmp");
    let err = ReplaySource::open(empty.path()).err().expect("refused");
    assert!(err.to_string().contains("no PNG/JPEG"), "{err}");
    assert!(ReplaySource::open(&empty.path().join("missing.mjpeg")).is_err());
}

#[test]
fn movement_shows_in_the_frame_difference_and_sensor_noise_does_not() {
    let scene_ = SimScene::default();
    let mut cam = SimCamera::new(scene_.clone(), 320, 240, 7);
    let mut act = Activity::default();
    let mut next = || luma(&cam.next_frame().expect("frame"));
    assert_eq!(act.update(&next()), 0.0);
    let still = act.update(&next());
    assert!(still < 1.0, "noise alone moved {still}");
    scene_.show(RgbImage::from_pixel(200, 200, Rgb([250, 240, 255])));
    let moved = act.update(&next());
    assert!(
        moved > CameraConfig::default().activity_threshold,
        "{moved}"
    );
    let settled = act.update(&next());
    assert!(settled < 1.0, "{settled}");
}

#[test]
fn the_loop_runs_fast_only_when_somebody_is_there_or_payment_is_awaited() {
    let cfg = CameraConfig {
        fps: 10,
        idle_fps: 2,
        ..CameraConfig::default()
    };
    let fast = Duration::from_millis(100);
    let slow = Duration::from_millis(500);
    assert_eq!(frame_interval(&cfg, false, false, None), slow);
    assert_eq!(frame_interval(&cfg, true, false, None), fast);
    assert_eq!(frame_interval(&cfg, false, true, None), fast);
    assert_eq!(
        frame_interval(&cfg, false, false, Some(Duration::from_secs(1))),
        fast
    );
    assert_eq!(
        frame_interval(&cfg, false, false, Some(Duration::from_secs(60))),
        slow
    );
}

#[test]
fn a_missing_v4l2_device_is_a_clear_error() {
    let err = V4l2Source::open(97, PixelFormat::Mjpeg, 640, 480, 10)
        .err()
        .expect("no /dev/video97 here");
    assert!(err.to_string().contains("/dev/video97"), "{err}");
}

#[test]
fn frames_keep_their_colour_and_luma_follows_bt601() {
    let dir = tempfile::tempdir().expect("tmp");
    RgbImage::from_pixel(4, 4, Rgb([200, 30, 10]))
        .save(dir.path().join("red.png"))
        .expect("save");
    let mut src = ReplaySource::open(dir.path()).expect("opens");
    let f = src.next_frame().expect("frame");
    assert_eq!(f.get_pixel(1, 1).0, [200, 30, 10]);
    // (77·200 + 150·30 + 29·10) / 256 = 78
    assert_eq!(luma(&f).get_pixel(1, 1).0[0], 78);
    let white = luma(&RgbImage::from_pixel(2, 2, Rgb([255, 255, 255])));
    assert_eq!(white.get_pixel(0, 0).0[0], 255);
}
