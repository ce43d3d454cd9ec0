//! Malformed model files give an error naming the file and the problem, never a panic.

mod common;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use weft_engine::{EngineError, LoadOptions};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn load_err(path: &Path) -> EngineError {
    match weft_engine::model::load(path, LoadOptions::default()) {
        Ok(_) => panic!("{} should not load", path.display()),
        Err(e) => e,
    }
}

/// A one-layer llama GGUF; `q_cols` lets a test give attn_q the wrong shape.
fn write_gguf(path: &Path, arch: &str, q_cols: usize) {
    let h = 32;
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.embedding_length"), Value::U32(h as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(64)),
        (format!("{arch}.block_count"), Value::U32(1)),
        (format!("{arch}.attention.head_count"), Value::U32(4)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(2)),
        (format!("{arch}.context_length"), Value::U32(64)),
    ];
    let t = |shape: &[usize]| {
        QTensor::quantize(&Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32)
            .unwrap()
    };
    let tensors = vec![
        ("token_embd.weight".to_string(), t(&[16, h])),
        ("output_norm.weight".to_string(), t(&[h])),
        ("blk.0.attn_norm.weight".to_string(), t(&[h])),
        ("blk.0.attn_q.weight".to_string(), t(&[h, q_cols])),
        ("blk.0.attn_k.weight".to_string(), t(&[16, h])),
        ("blk.0.attn_v.weight".to_string(), t(&[16, h])),
        ("blk.0.attn_output.weight".to_string(), t(&[h, h])),
        ("blk.0.ffn_norm.weight".to_string(), t(&[h])),
        ("blk.0.ffn_gate.weight".to_string(), t(&[64, h])),
        ("blk.0.ffn_up.weight".to_string(), t(&[64, h])),
        ("blk.0.ffn_down.weight".to_string(), t(&[h, 64])),
    ];
    let mut f = std::fs::File::create(path).unwrap();
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

#[test]
fn a_well_formed_tiny_gguf_loads() {
    let p = tmp("ok.gguf");
    write_gguf(&p, "llama", 32);
    let m = weft_engine::model::load(&p, LoadOptions::default()).expect("tiny gguf loads");
    assert_eq!(m.config.num_layers, 1);
    assert_eq!(m.config.vocab_size, 16);
}

#[test]
fn wrong_tensor_shape_names_the_tensor() {
    let p = tmp("shape.gguf");
    write_gguf(&p, "llama", 30);
    let e = load_err(&p);
    let msg = e.to_string();
    assert_eq!(e.kind(), "model_load");
    assert!(msg.contains("shape.gguf") && msg.contains("blk.0.attn_q.weight") && msg.contains("[32, 30]"), "{msg}");
}

#[test]
fn unsupported_architecture_is_named() {
    let p = tmp("arch.gguf");
    write_gguf(&p, "mamba", 32);
    let e = load_err(&p);
    assert_eq!(e.kind(), "unsupported_architecture");
    assert!(e.to_string().contains("mamba") && e.to_string().contains("arch.gguf"), "{e}");
}

#[test]
fn truncated_gguf_is_reported_as_truncated() {
    let src = common::default_model();
    let bytes = std::fs::read(&src).unwrap();
    for cut in [bytes.len() / 2, 100, 5] {
        let p = tmp(&format!("trunc-{cut}.gguf"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = load_err(&p);
        assert_eq!(e.kind(), "model_load");
        assert!(e.to_string().contains(&format!("trunc-{cut}.gguf")), "{e}");
        if cut == bytes.len() / 2 {
            assert!(e.to_string().contains("truncated"), "{e}");
        }
    }
}

#[test]
fn garbage_and_missing_files_are_errors() {
    let p = tmp("garbage.gguf");
    std::fs::write(&p, b"this is not a model at all, just some text").unwrap();
    assert!(load_err(&p).to_string().contains("garbage.gguf"));
    let missing = tmp("missing.gguf");
    assert!(load_err(&missing).to_string().contains("no such file"));
    let dir = tmp("hfdir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = load_err(&dir);
    assert!(e.to_string().contains("config.json"), "{e}");
}
