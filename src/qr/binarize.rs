//! Grey-level preprocessing and binarisation used by the QR decoder passes.
//!
//! Everything here works on a plain `(&[u8], width, height)` grey buffer with
//! `stride == width`, writes into caller-owned buffers (so the decoder can reuse
//! them frame after frame) and never panics on any size, including zero.

use rxing::common::{BitArray, BitMatrix};

/// Side of a threshold block, in pixels (as zxing's hybrid binariser).
const BLOCK: usize = 8;
/// Images smaller than this (either side) get one global threshold instead.
const MIN_DIMENSION: usize = 40;

/// A grey image held in a reusable buffer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Grey {
    /// Pixels, row-major, `width * height` bytes.
    pub(crate) data: Vec<u8>,
    /// Width in pixels.
    pub(crate) width: usize,
    /// Height in pixels.
    pub(crate) height: usize,
}

impl Grey {
    /// Resizes the buffer for a `width` × `height` image (contents unspecified).
    pub(crate) fn reset(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width.saturating_mul(height), 0);
    }
}

/// Returns the (low, high) grey levels at the 2nd and 98th percentiles,
/// sampled on a sparse grid so the cost is negligible.
pub(crate) fn percentiles(src: &[u8], width: usize, height: usize) -> (u8, u8) {
    let mut hist = [0u32; 256];
    let step = if width * height > 40_000 { 3 } else { 1 };
    let mut n = 0u32;
    for y in (0..height).step_by(step) {
        let row = &src[y * width..(y + 1) * width];
        for &v in row.iter().step_by(step) {
            hist[v as usize] += 1;
            n += 1;
        }
    }
    if n == 0 {
        return (0, 255);
    }
    let cut = (n / 50).max(1);
    let mut acc = 0;
    let mut lo = 0u8;
    for (i, &h) in hist.iter().enumerate() {
        acc += h;
        if acc >= cut {
            lo = i as u8;
            break;
        }
    }
    acc = 0;
    let mut hi = 255u8;
    for (i, &h) in hist.iter().enumerate().rev() {
        acc += h;
        if acc >= cut {
            hi = i as u8;
            break;
        }
    }
    (lo, hi.max(lo))
}

/// Linear contrast stretch of `src` so that `lo..=hi` maps to `0..=255`.
pub(crate) fn stretch(src: &Grey, lo: u8, hi: u8, dst: &mut Grey) {
    dst.reset(src.width, src.height);
    let span = (hi.saturating_sub(lo) as u32).max(1);
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        let x = (i as i32 - lo as i32).clamp(0, span as i32) as u32;
        *v = ((x * 255 + span / 2) / span).min(255) as u8;
    }
    for (d, s) in dst.data.iter_mut().zip(&src.data) {
        *d = lut[*s as usize];
    }
}

/// 2×2 box-average downscale (odd trailing row/column dropped).
pub(crate) fn downscale2(src: &Grey, dst: &mut Grey) {
    let (w, h) = (src.width / 2, src.height / 2);
    dst.reset(w, h);
    let sw = src.width;
    for y in 0..h {
        let r0 = &src.data[2 * y * sw..2 * y * sw + sw];
        let r1 = &src.data[(2 * y + 1) * sw..(2 * y + 1) * sw + sw];
        let out = &mut dst.data[y * w..(y + 1) * w];
        for ((o, a), b) in out
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            let s = a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16;
            *o = ((s + 2) >> 2) as u8;
        }
    }
}

/// Integer-factor box-average downscale (for oversized frames).
pub(crate) fn downscale_n(src: &[u8], width: usize, height: usize, n: usize, dst: &mut Grey) {
    let n = n.max(1);
    let (w, h) = (width / n, height / n);
    dst.reset(w, h);
    let area = (n * n) as u32;
    for y in 0..h {
        for x in 0..w {
            let mut s = 0u32;
            for yy in 0..n {
                let row = &src[(y * n + yy) * width + x * n..(y * n + yy) * width + x * n + n];
                s += row.iter().map(|&v| v as u32).sum::<u32>();
            }
            dst.data[y * w + x] = ((s + area / 2) / area) as u8;
        }
    }
}

/// 2× bilinear upscale.
pub(crate) fn upscale2(src: &Grey, dst: &mut Grey) {
    let (sw, sh) = (src.width, src.height);
    let (w, h) = (sw * 2, sh * 2);
    dst.reset(w, h);
    if sw == 0 || sh == 0 {
        return;
    }
    for y in 0..h {
        // sample position in source space: (y + 0.5) / 2 - 0.5
        let fy2 = y as i32 - 1; // = 2*(sy) - 0.5*2 ... in half-pixel units
        let y0 = (fy2.max(0) / 2) as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = if fy2 < 0 { 0 } else { (fy2 % 2) as u32 * 2 + 1 }; // quarters: 1 or 3
        let (wy0, wy1) = if fy2 < 0 { (4, 0) } else { (4 - wy, wy) };
        let r0 = &src.data[y0 * sw..(y0 + 1) * sw];
        let r1 = &src.data[y1 * sw..(y1 + 1) * sw];
        let out = &mut dst.data[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            let fx2 = x as i32 - 1;
            let x0 = (fx2.max(0) / 2) as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let (wx0, wx1) = if fx2 < 0 {
                (4, 0)
            } else {
                let q = (fx2 % 2) as u32 * 2 + 1;
                (4 - q, q)
            };
            let top = r0[x0] as u32 * wx0 + r0[x1] as u32 * wx1;
            let bot = r1[x0] as u32 * wx0 + r1[x1] as u32 * wx1;
            *o = ((top * wy0 + bot * wy1 + 8) / 16) as u8;
        }
    }
}

/// 3×3 box blur (edges replicated).
pub(crate) fn blur3(src: &Grey, tmp: &mut Vec<u16>, dst: &mut Grey) {
    let (w, h) = (src.width, src.height);
    dst.reset(w, h);
    if w == 0 || h == 0 {
        return;
    }
    tmp.clear();
    tmp.resize(w * h, 0);
    // horizontal sums (edges replicated)
    for y in 0..h {
        let row = &src.data[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        if w == 1 {
            out[0] = 3 * row[0] as u16;
            continue;
        }
        out[0] = 2 * row[0] as u16 + row[1] as u16;
        out[w - 1] = row[w - 2] as u16 + 2 * row[w - 1] as u16;
        for (o, win) in out[1..w - 1].iter_mut().zip(row.windows(3)) {
            *o = win[0] as u16 + win[1] as u16 + win[2] as u16;
        }
    }
    for y in 0..h {
        let a = &tmp[y.saturating_sub(1) * w..y.saturating_sub(1) * w + w];
        let b = &tmp[y * w..y * w + w];
        let c = &tmp[(y + 1).min(h - 1) * w..(y + 1).min(h - 1) * w + w];
        let out = &mut dst.data[y * w..(y + 1) * w];
        for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
            // (sum + 4) / 9 via multiply-shift: exact for sums up to 9 * 255
            *o = (((a + b + c + 4) as u32 * 7282) >> 16) as u8;
        }
    }
}

/// Local-average binarisation in the style of zxing's hybrid binariser:
/// 8×8 block statistics, each pixel thresholded at the mean of the 5×5 block
/// neighbourhood. Blocks whose range is at most `min_range` are treated as
/// flat (background); zxing fixes that at 24, which loses low-contrast codes,
/// so the caller passes a value scaled to the frame's own contrast.
///
/// A flat block is assumed to be background: zxing sets its black point to
/// half its minimum, which is right for dark ink on light paper but, with
/// low contrast, drags the threshold of neighbouring code blocks below the ink
/// level. With `low_contrast` the black point of a flat block sits just under
/// its own level instead (`min - 2 * min_range`).
///
/// Writes black = set bits into `out` (reallocated only when the size changes).
pub(crate) fn local_threshold(
    src: &Grey,
    min_range: u32,
    low_contrast: bool,
    points: &mut Vec<u32>,
    out: &mut BitMatrix,
) {
    let (w, h) = (src.width, src.height);
    if w < MIN_DIMENSION || h < MIN_DIMENSION {
        global_threshold(src, out);
        return;
    }
    let sub_w = w.div_ceil(BLOCK);
    let sub_h = h.div_ceil(BLOCK);
    // points[..n] = block black points, points[n..2n] = block thresholds,
    // then per-column scratch (sum, min, max, 5-row sums) for one block row.
    let n = sub_w * sub_h;
    points.clear();
    points.resize(2 * n + 4 * sub_w, 0);
    let (bp, rest) = points.split_at_mut(n);
    let (thr, scratch) = rest.split_at_mut(n);
    let (sums, rest) = scratch.split_at_mut(sub_w);
    let (mins, rest) = rest.split_at_mut(sub_w);
    let (maxs, col_sum) = rest.split_at_mut(sub_w);
    let data = &src.data;
    let last_x = w - BLOCK;
    // Per-column min / max / sum over the 8 rows of a block row (vectorises),
    // then reduced per block.
    let mut cmin = vec![0u8; w];
    let mut cmax = vec![0u8; w];
    let mut csum = vec![0u16; w];
    for by in 0..sub_h {
        let yoff = (by * BLOCK).min(h - BLOCK);
        cmin.copy_from_slice(&data[yoff * w..(yoff + 1) * w]);
        cmax.copy_from_slice(&data[yoff * w..(yoff + 1) * w]);
        for (c, &p) in csum.iter_mut().zip(&data[yoff * w..(yoff + 1) * w]) {
            *c = p as u16;
        }
        for y in yoff + 1..yoff + BLOCK {
            let row = &data[y * w..(y + 1) * w];
            for (((mn, mx), sm), &p) in cmin
                .iter_mut()
                .zip(cmax.iter_mut())
                .zip(csum.iter_mut())
                .zip(row)
            {
                *mn = (*mn).min(p);
                *mx = (*mx).max(p);
                *sm += p as u16;
            }
        }
        for bx in 0..sub_w {
            let xoff = (bx * BLOCK).min(last_x);
            sums[bx] = csum[xoff..xoff + BLOCK].iter().map(|&v| v as u32).sum();
            mins[bx] = cmin[xoff..xoff + BLOCK].iter().copied().min().unwrap_or(0) as u32;
            maxs[bx] = cmax[xoff..xoff + BLOCK].iter().copied().max().unwrap_or(0) as u32;
        }
        for bx in 0..sub_w {
            let (min, max) = (mins[bx], maxs[bx]);
            let mut avg = sums[bx] >> 6;
            if max - min <= min_range {
                avg = if low_contrast {
                    min.saturating_sub(2 * min_range)
                } else {
                    min / 2
                };
                if by > 0 && bx > 0 {
                    let nb = (bp[(by - 1) * sub_w + bx]
                        + 2 * bp[by * sub_w + bx - 1]
                        + bp[(by - 1) * sub_w + bx - 1])
                        / 4;
                    if min < nb {
                        avg = nb;
                    }
                }
            }
            bp[by * sub_w + bx] = avg;
        }
    }
    // Threshold of each block: mean black point of the 5×5 blocks around it
    // (window clamped inside the grid, as zxing). Column sums first.
    let cap = |v: usize, len: usize| v.clamp(2, len - 3);
    for by in 0..sub_h {
        let top = cap(by, sub_h);
        col_sum.fill(0);
        for z in top - 2..=top + 2 {
            for (c, v) in col_sum.iter_mut().zip(&bp[z * sub_w..(z + 1) * sub_w]) {
                *c += v;
            }
        }
        for bx in 0..sub_w {
            let left = cap(bx, sub_w);
            let s: u32 = col_sum[left - 2..=left + 2].iter().sum();
            thr[by * sub_w + bx] = s / 25;
        }
    }
    // Pixels: black where p <= the threshold of its block; built one machine
    // word at a time and copied into the matrix row.
    ensure_matrix(out, w, h);
    const WB: usize = usize::BITS as usize;
    let words = w.div_ceil(WB);
    let mut row_bits = BitArray::with_size(words * WB);
    let mut tpix = vec![0u8; w];
    let mut cur_by = usize::MAX;
    for y in 0..h {
        let by = (y / BLOCK).min(sub_h - 1);
        if by != cur_by {
            cur_by = by;
            let trow = &thr[by * sub_w..(by + 1) * sub_w];
            for (chunk, &t) in tpix.chunks_mut(BLOCK).zip(trow) {
                chunk.fill(t.min(255) as u8);
            }
        }
        let row = &data[y * w..(y + 1) * w];
        for (k, (px, tx)) in row.chunks(WB).zip(tpix.chunks(WB)).enumerate() {
            row_bits.setBulk(k * WB, pack_le(px, tx));
        }
        out.setRow(y as u32, &row_bits);
    }
}

/// Bit i of the result = `px[i] <= tx[i]` (slices of at most one machine
/// word's bit count). Eight pixels at a time with a SWAR byte compare.
#[inline]
pub(crate) fn pack_le(px: &[u8], tx: &[u8]) -> usize {
    const H: u64 = 0x8080_8080_8080_8080;
    let mut word = 0usize;
    let pc = px.chunks_exact(8);
    let tc = tx.chunks_exact(8);
    let (pr, tr) = (pc.remainder(), tc.remainder());
    let mut shift = 0;
    for (p8, t8) in pc.zip(tc) {
        let mut pa = [0u8; 8];
        let mut ta = [0u8; 8];
        pa.copy_from_slice(p8);
        ta.copy_from_slice(t8);
        let (y, x) = (u64::from_le_bytes(pa), u64::from_le_bytes(ta));
        // per byte: high bit set iff x >= y (i.e. p <= t)
        let d = (x | H).wrapping_sub(y & !H);
        let ge = ((x & !y) | (!(x ^ y) & d)) & H;
        // gather the eight high bits into one byte, byte 0 -> bit 0
        let byte = ((ge >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as usize;
        word |= byte << shift;
        shift += 8;
    }
    for (i, (&p, &t)) in pr.iter().zip(tr).enumerate() {
        word |= ((p <= t) as usize) << (shift + i);
    }
    word
}

/// One global threshold (Otsu) for the whole image.
pub(crate) fn global_threshold(src: &Grey, out: &mut BitMatrix) {
    let (w, h) = (src.width, src.height);
    ensure_matrix(out, w, h);
    if w == 0 || h == 0 {
        return;
    }
    let mut hist = [0u64; 256];
    for &p in &src.data {
        hist[p as usize] += 1;
    }
    let total: u64 = hist.iter().sum();
    let sum_all: u64 = hist.iter().enumerate().map(|(i, &c)| i as u64 * c).sum();
    let (mut w_b, mut sum_b, mut best, mut thr) = (0u64, 0u64, 0f64, 127usize);
    for (t, &c) in hist.iter().enumerate() {
        w_b += c;
        if w_b == 0 {
            continue;
        }
        let w_f = total - w_b;
        if w_f == 0 {
            break;
        }
        sum_b += t as u64 * c;
        let m_b = sum_b as f64 / w_b as f64;
        let m_f = (sum_all - sum_b) as f64 / w_f as f64;
        let between = w_b as f64 * w_f as f64 * (m_b - m_f) * (m_b - m_f);
        if between > best {
            best = between;
            thr = t;
        }
    }
    const WB: usize = usize::BITS as usize;
    let tpix = vec![thr as u8; w];
    let mut row_bits = BitArray::with_size(w.div_ceil(WB) * WB);
    for y in 0..h {
        let row = &src.data[y * w..(y + 1) * w];
        for (k, (px, tx)) in row.chunks(WB).zip(tpix.chunks(WB)).enumerate() {
            row_bits.setBulk(k * WB, pack_le(px, tx));
        }
        out.setRow(y as u32, &row_bits);
    }
}

/// Makes `out` an all-white `w` × `h` matrix, reusing its storage when possible.
fn ensure_matrix(out: &mut BitMatrix, w: usize, h: usize) {
    if out.getWidth() as usize == w && out.getHeight() as usize == h {
        out.clear();
    } else if let Ok(m) = BitMatrix::new(w.max(1) as u32, h.max(1) as u32) {
        *out = m;
    }
}
