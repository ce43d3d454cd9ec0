//! The AVX2+FMA tile: bit-identical to the portable one (see the parent module).

use super::{Acc, NT, Q8Acts, Q8Weights, QK};
use std::arch::x86_64::*;

/// R rows × 16 columns (two 8-lane halves) over all blocks.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile<const R: usize>(w: &Q8Weights, a: &Q8Acts, r0: usize, t: usize, out: &mut Acc) {
    let (k, nb) = (a.k, w.nb);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let wq = w.qs[t * nb * 8 * 64..].as_ptr();
    let ap: [*const u8; R] = std::array::from_fn(|r| a.au[(r0 + r) * k..].as_ptr());
    let ones = _mm256_set1_epi16(1);
    let flip = 0x8080_8080u32 as i32;
    for b in 0..nb {
        let mut p = [[_mm256_setzero_si256(); 2]; R];
        for g in 0..8 {
            // SAFETY: the tile holds nb·8 groups of 64 bytes; each row holds k bytes.
            unsafe {
                let base = wq.add((b * 8 + g) * 64);
                let wv =
                    [_mm256_loadu_si256(base as *const __m256i), _mm256_loadu_si256(base.add(32) as *const __m256i)];
                let wabs = [_mm256_abs_epi8(wv[0]), _mm256_abs_epi8(wv[1])];
                for r in 0..R {
                    // The activation's 4 bytes as signed values (stored offset by 128).
                    let word = (ap[r].add(b * QK + g * 4) as *const i32).read_unaligned() ^ flip;
                    let av = _mm256_set1_epi32(word);
                    for h in 0..2 {
                        // |w| · (a with w's sign): at most 2·127·127 per pair, no i16 saturation.
                        let pairs = _mm256_maddubs_epi16(wabs[h], _mm256_sign_epi8(av, wv[h]));
                        p[r][h] = _mm256_add_epi32(p[r][h], _mm256_madd_epi16(pairs, ones));
                    }
                }
            }
        }
        let at = (t * nb + b) * NT;
        for h in 0..2 {
            // SAFETY: per-block constants hold NT floats at `at`.
            let (dw, mw) = unsafe {
                (_mm256_loadu_ps(w.d.as_ptr().add(at + h * 8)), _mm256_loadu_ps(w.m.as_ptr().add(at + h * 8)))
            };
            for r in 0..R {
                let da = _mm256_set1_ps(a.d[(r0 + r) * nb + b]);
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(p[r][h]), dw);
                acc[r][h] = _mm256_fmadd_ps(v, da, acc[r][h]);
                if w.has_min {
                    acc[r][h] = _mm256_fmadd_ps(_mm256_set1_ps(a.s[(r0 + r) * nb + b]), mw, acc[r][h]);
                }
            }
        }
    }
    for r in 0..R {
        // SAFETY: out[r] has NT = 16 floats.
        unsafe {
            _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r][0]);
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8), acc[r][1]);
        }
    }
}
