//! Lists a PyTorch file's tensors (name, dtype, shape) with the `pytorch-reader` crate,
//! the way `ckpt inspect` does, for benchmarks side by side.
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: pytorch-reader-list FILE")?;
    let reader = pytorch_reader::PytorchReader::new(&path)?;
    let mut out = std::io::stdout().lock();
    let mut parameters = 0usize;
    for tensor in reader.tensors().values() {
        parameters += tensor.shape().iter().product::<usize>();
        writeln!(out, "{} {:?} {:?}", tensor.name, tensor.dtype(), tensor.shape())?;
    }
    writeln!(out, "{} tensors, {parameters} parameters", reader.tensors().len())?;
    Ok(())
}
