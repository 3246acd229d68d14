//! cuda stacks: a cudarc device buffer with its shape `[N, Y, X]` and the stream its work runs
//! on. CUDA is loaded at run time: [`inventory`] probes for libcuda before touching the driver,
//! so a machine without it simply has no GPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, CudaModule, CudaSlice, CudaStream, DriverError};
use ndarray::Array3;

use crate::DeviceError;

/// A stack on a GPU: f32 samples, planes then rows then columns, contiguous.
pub struct CudaStack {
    data: Buffer,
    shape: [usize; 3],
    stream: Arc<CudaStream>,
}

enum Buffer {
    Owned(CudaSlice<f32>),
    /// A torch tensor's memory, shared (no copy): the tensor owns it, the slice only borrows it.
    #[cfg(feature = "torch")]
    Torch {
        slice: std::mem::ManuallyDrop<CudaSlice<f32>>,
        _owner: tch::Tensor,
    },
}

impl Drop for Buffer {
    fn drop(&mut self) {
        #[cfg(feature = "torch")]
        if let Buffer::Torch { slice, .. } = self {
            // SAFETY: taken once, in drop; leaking hands the memory back to its owner, the tensor.
            let slice = unsafe { std::mem::ManuallyDrop::take(slice) };
            slice.leak();
        }
    }
}

#[cfg(feature = "torch")]
impl Drop for CudaStack {
    fn drop(&mut self) {
        // Memory shared with a torch tensor goes back to torch's allocator when the tensor drops
        // (after this), and torch reuses it on its own stream: let this stream's work on it end.
        if matches!(self.data, Buffer::Torch { .. }) {
            // An error here means the device failed; the next use of it reports that.
            let _ = self.stream.synchronize();
        }
    }
}

impl std::fmt::Debug for CudaStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CudaStack {{ shape: {:?}, device: cuda:{} }}", self.shape, self.ordinal())
    }
}

fn failed(ordinal: usize, e: DriverError) -> DeviceError {
    DeviceError::from_message(format!("cuda:{ordinal}"), format!("{e:?}"))
}

/// The primary context of device `ordinal`, created once per process.
pub fn context(ordinal: usize) -> Result<Arc<CudaContext>, DeviceError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<usize, Arc<CudaContext>>>> = OnceLock::new();
    if !culib_present() {
        return Err(DeviceError::Unsupported("CUDA is not available on this machine (libcuda not found)".into()));
    }
    let map = CONTEXTS.get_or_init(Default::default);
    let mut map = map.lock().map_err(|_| DeviceError::Unsupported("CUDA context table poisoned".into()))?;
    if let Some(ctx) = map.get(&ordinal) {
        return Ok(Arc::clone(ctx));
    }
    let ctx = CudaContext::new(ordinal).map_err(|e| failed(ordinal, e))?;
    map.insert(ordinal, Arc::clone(&ctx));
    Ok(ctx)
}

/// This thread's stream on device `ordinal`, created on its first use and kept for the thread's
/// life. Each worker queues its work on a stream of its own: on one shared stream every copy to
/// the host waited for the kernels all other workers had queued before it (with 16 workers on
/// an H200, a step's percentile normalizations took 2.6–7.5 times as long as on the CPU). The
/// streams do not wait for each other; cudarc's events order the uses of one buffer across them
/// ([`CudaContext::is_event_tracking`]), and [`after_torch`] orders them after torch's work.
pub fn thread_stream(ordinal: usize) -> Result<Arc<CudaStream>, DeviceError> {
    thread_local! {
        static STREAMS: std::cell::RefCell<HashMap<usize, Arc<CudaStream>>> = Default::default();
    }
    if let Some(stream) = STREAMS.with_borrow(|streams| streams.get(&ordinal).cloned()) {
        return Ok(stream);
    }
    let stream = context(ordinal)?.new_stream().map_err(|e| failed(ordinal, e))?;
    STREAMS.with_borrow_mut(|streams| streams.insert(ordinal, Arc::clone(&stream)));
    Ok(stream)
}

/// Make `stream` wait for the work queued so far on the device's legacy default stream, where
/// torch queues its kernels (the per-thread streams are non-blocking: they would not wait).
#[cfg(feature = "torch")]
fn after_torch(stream: &CudaStream) -> Result<(), DriverError> {
    stream.join(&stream.context().default_stream())
}

/// A module compiled once per device from CUDA C source (NVRTC) and cached under `name`.
pub fn module(ordinal: usize, name: &'static str, source: &'static str) -> Result<Arc<CudaModule>, DeviceError> {
    /// Compiled modules by (device ordinal, module name).
    type Modules = HashMap<(usize, &'static str), Arc<CudaModule>>;
    static MODULES: OnceLock<Mutex<Modules>> = OnceLock::new();
    let ctx = context(ordinal)?;
    let map = MODULES.get_or_init(Default::default);
    let mut map = map.lock().map_err(|_| DeviceError::Unsupported("CUDA module table poisoned".into()))?;
    if let Some(m) = map.get(&(ordinal, name)) {
        return Ok(Arc::clone(m));
    }
    // SAFETY: probing whether a shared library loads has no other effect.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(DeviceError::Unsupported("NVRTC (libnvrtc) not found: cannot compile the CUDA kernels".into()));
    }
    // compute_75 (Turing) is the oldest target CUDA 13 compiles for; newer GPUs JIT the PTX.
    let opts = cudarc::nvrtc::CompileOptions { arch: Some("compute_75"), ..Default::default() };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts)
        .map_err(|e| DeviceError::Failed { device: format!("cuda:{ordinal}"), detail: format!("NVRTC: {e:?}") })?;
    let m = ctx.load_module(ptx).map_err(|e| failed(ordinal, e))?;
    map.insert((ordinal, name), Arc::clone(&m));
    Ok(m)
}

/// Whether libcuda can be loaded (checked once).
pub fn culib_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: probing whether a shared library loads has no other effect.
    *PRESENT.get_or_init(|| unsafe { cudarc::driver::sys::is_culib_present() })
}

impl CudaStack {
    /// A new stack on `stream` holding `data` (length n·y·x).
    pub fn new(data: CudaSlice<f32>, shape: [usize; 3], stream: Arc<CudaStream>) -> Result<Self, DeviceError> {
        if data.len() != shape.iter().product::<usize>() {
            return Err(DeviceError::Unsupported(format!("{} samples for shape {shape:?}", data.len())));
        }
        Ok(Self { data: Buffer::Owned(data), shape, stream })
    }

    /// Shape `[planes, y, x]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The stream work on this stack runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.stream.context().ordinal()
    }

    /// The samples on the device.
    pub fn data(&self) -> &CudaSlice<f32> {
        match &self.data {
            Buffer::Owned(s) => s,
            #[cfg(feature = "torch")]
            Buffer::Torch { slice, .. } => slice,
        }
    }

    /// Each plane as its own stack `[1, Y, X]` (device-to-device copies).
    pub fn split_planes(&self) -> Result<Vec<CudaStack>, DeviceError> {
        let [n, h, w] = self.shape;
        let px = h * w;
        (0..n)
            .map(|i| {
                let plane = self
                    .stream
                    .clone_dtod(&self.data().slice(i * px..(i + 1) * px))
                    .map_err(|e| failed(self.ordinal(), e))?;
                CudaStack::new(plane, [1, h, w], Arc::clone(&self.stream))
            })
            .collect()
    }

    /// Stacks of equal plane shape on one device joined along the planes (device-to-device copies).
    pub fn join(stacks: &[&CudaStack]) -> Result<CudaStack, DeviceError> {
        let Some(first) = stacks.first() else { return Err(DeviceError::Unsupported("no planes to join".into())) };
        let [_, h, w] = first.shape;
        if stacks.iter().any(|s| s.shape[1..] != first.shape[1..] || s.ordinal() != first.ordinal()) {
            return Err(DeviceError::Unsupported("planes of one stack differ in shape or device".into()));
        }
        let total: usize = stacks.iter().map(|s| s.shape[0]).sum();
        let ordinal = first.ordinal();
        let stream = thread_stream(ordinal)?;
        let mut out = stream.alloc_zeros::<f32>((total * h * w).max(1)).map_err(|e| failed(ordinal, e))?;
        let mut at = 0;
        for s in stacks {
            let len = s.data().len();
            stream.memcpy_dtod(s.data(), &mut out.slice_mut(at..at + len)).map_err(|e| failed(ordinal, e))?;
            at += len;
        }
        CudaStack::new(out, [total, h, w], stream)
    }

    /// Host → device, one copy.
    pub fn from_ndarray(array: &Array3<f32>, ordinal: u32) -> Result<Self, DeviceError> {
        let ordinal = ordinal as usize;
        let stream = thread_stream(ordinal)?;
        let (n, h, w) = array.dim();
        let host = array.as_standard_layout();
        let slice = host.as_slice().ok_or_else(|| DeviceError::Unsupported("non-contiguous stack".into()))?;
        let data = stream.clone_htod(slice).map_err(|e| failed(ordinal, e))?;
        Self::new(data, [n, h, w], stream)
    }

    /// Device → host, one copy.
    pub fn to_ndarray(&self) -> Result<Array3<f32>, DeviceError> {
        let v = self.stream.clone_dtoh(self.data()).map_err(|e| failed(self.ordinal(), e))?;
        Array3::from_shape_vec((self.shape[0], self.shape[1], self.shape[2]), v)
            .map_err(|e| DeviceError::Unsupported(e.to_string()))
    }

    /// A torch tensor on this GPU, sharing nothing: one device-to-device copy (no host round trip).
    #[cfg(feature = "torch")]
    pub fn to_torch(&self) -> Result<tch::Tensor, DeviceError> {
        let ordinal = self.ordinal();
        let device = super::torch::device_of(Some(ordinal as u32));
        let dims: Vec<i64> = self.shape.iter().map(|&d| d as i64).collect();
        let out = tch::Tensor::f_empty(dims.as_slice(), (tch::Kind::Float, device))
            .map_err(|e| super::torch::error(device, e))?;
        let n = self.data().len();
        // torch may hand out memory its own queued kernels still use: wait for them first.
        after_torch(&self.stream).map_err(|e| failed(ordinal, e))?;
        // SAFETY: `out` is a fresh contiguous f32 tensor of exactly n samples on this device; the
        // borrowed slice is leaked (never freed here), the tensor keeps owning its memory.
        let mut dst = std::mem::ManuallyDrop::new(unsafe {
            self.stream.upgrade_device_ptr::<f32>(out.data_ptr() as cudarc::driver::sys::CUdeviceptr, n)
        });
        let copied = self.stream.memcpy_dtod(self.data(), &mut *dst).map_err(|e| failed(ordinal, e));
        let synced = self.stream.synchronize().map_err(|e| failed(ordinal, e));
        std::mem::ManuallyDrop::into_inner(dst).leak();
        copied?;
        synced?;
        Ok(out)
    }

    /// A cuda stack sharing a torch tensor's device memory (no copy; the tensor is kept alive).
    #[cfg(feature = "torch")]
    pub fn from_torch(tensor: tch::Tensor) -> Result<Self, DeviceError> {
        let tch::Device::Cuda(ordinal) = tensor.device() else {
            return Err(DeviceError::Unsupported(
                "a torch stack on the CPU cannot become a cuda stack without a device".into(),
            ));
        };
        let tensor = tensor
            .f_to_kind(tch::Kind::Float)
            .and_then(|t| t.f_contiguous())
            .map_err(|e| super::torch::error(tensor.device(), e))?;
        let size = tensor.size();
        let [n, h, w] = size[..] else {
            return Err(DeviceError::Unsupported(format!("a torch stack must be [N, Y, X], got {size:?}")));
        };
        let shape = [n as usize, h as usize, w as usize];
        let stream = thread_stream(ordinal)?;
        // The tensor's samples may still be being computed on torch's stream.
        after_torch(&stream).map_err(|e| failed(ordinal, e))?;
        let len = shape.iter().product();
        // SAFETY: the pointer is the tensor's contiguous f32 storage of `len` samples on this
        // device; the tensor travels with the slice and outlives it (Buffer::drop leaks the slice).
        let slice =
            unsafe { stream.upgrade_device_ptr::<f32>(tensor.data_ptr() as cudarc::driver::sys::CUdeviceptr, len) };
        Ok(Self { data: Buffer::Torch { slice: std::mem::ManuallyDrop::new(slice), _owner: tensor }, shape, stream })
    }
}
