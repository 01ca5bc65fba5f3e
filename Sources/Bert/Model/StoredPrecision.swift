import BertCompute
import Foundation

/// How `bert quantize` stores a model's matrices in model.safetensors.
public enum StoredPrecision: String, Sendable, CaseIterable {
    /// I8 with an F32 scale per row in "<name>_scale": value = int8 × scale, scale = max |row| / 127
    /// (the int8 products' own weight quantization, so `--precision int8` uses exactly these values).
    case int8
    /// BF16, rounded to nearest (ties to even), as the bf16 products round.
    case bf16
}

extension ModelWeights {
    /// Writes `weights` to `url` with every matrix (a 2-D float tensor: the Linear weights and the
    /// embeddings) stored as `precision`, the vectors (biases, LayerNorm) as F32 and any other tensor
    /// as it is; the layout is recorded in the file's metadata ("swift_bert_quantization"). Every
    /// reader of model folders loads the result (as Float: int8 × scale, or the BF16 value).
    public static func writeQuantized(_ weights: SafeTensorsFile, precision: StoredPrecision, to url: URL) throws {
        var writer = SafeTensorsWriter()
        for t in weights.tensors {
            guard [.F32, .F16, .BF16, .F64].contains(t.dtype) || (t.dtype == .I8 && t.name.hasSuffix(".weight")) else {
                // Integer buffers (position_ids) and a quantized file's own scales pass as they are.
                try weights.withBytes(t.name) { writer.add(t.name, dtype: t.dtype, shape: t.shape, bytes: $0) }
                continue
            }
            if t.name.hasSuffix("_scale"), weights.info(String(t.name.dropLast(6)))?.dtype == .I8 { continue }
            let values: [Float]
            do { values = try weights.floats(t.name) } catch let e as SafeTensorsError {
                throw BertError.malformedFile(path: e.file, reason: e.message)
            }
            guard values.allSatisfy({ $0.isFinite }) else {
                throw BertError.notFinite(
                    what: "\(weights.name): tensor \(t.name)", advice: "the checkpoint holds NaN or infinite weights")
            }
            guard t.shape.count == 2, t.shape[0] > 0, t.shape[1] > 0 else {
                values.withUnsafeBufferPointer { writer.add(t.name, shape: t.shape, floats: $0) }
                continue
            }
            let (rows, cols) = (t.shape[0], t.shape[1])
            switch precision {
            case .int8:
                let (q, scales) = values.withUnsafeBufferPointer {
                    Int8Weights.quantize($0.baseAddress!, n: rows, k: cols)
                }
                q.withUnsafeBytes { writer.add(t.name, dtype: .I8, shape: t.shape, bytes: $0) }
                scales.withUnsafeBufferPointer { writer.add(t.name + "_scale", shape: [rows], floats: $0) }
            case .bf16:
                var halves = [UInt16](repeating: 0, count: values.count)
                for i in values.indices {
                    // Nearest, ties to even: add half an ulp of bf16 (minus one when the kept bit is 0).
                    let bits = values[i].bitPattern
                    halves[i] = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16).littleEndian
                }
                halves.withUnsafeBytes { writer.add(t.name, dtype: .BF16, shape: t.shape, bytes: $0) }
            }
        }
        let layout =
            precision == .int8
            ? "int8: every matrix I8 with F32 per-row scales in <name>_scale (value = int8 x scale, "
                + "scale = max|row|/127); vectors F32"
            : "bf16: every matrix BF16 (round to nearest even); vectors F32"
        do {
            try writer.write(to: url, metadata: ["format": "pt", "swift_bert_quantization": layout])
        } catch let e as SafeTensorsError {
            throw BertError.fileAccess(path: e.file, reason: e.message)
        }
    }
}
