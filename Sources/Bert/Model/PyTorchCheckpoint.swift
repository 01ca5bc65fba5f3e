import BertTokenizer
import Foundation

/// `pytorch_model.bin`, read without Python: the zip archive `torch.save` writes since PyTorch 1.6
/// (`<root>/data.pkl`, the state dict pickled; `<root>/data/<key>`, one member per storage), its
/// tensors read in place from the memory-mapped file. The pickle goes through
/// `StateDictUnpickler`, which refuses every global a state dict does not need.
enum PyTorchCheckpoint {
    static func read(_ url: URL) throws -> SafeTensorsFile {
        let path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw BertError.fileAccess(path: path, reason: fileErrorReason(error, path: path))
        }
        return try read(data, path: path)
    }

    static func read(_ data: Data, path: String) throws -> SafeTensorsFile {
        func bad(_ why: String) -> BertError { .malformedFile(path: path, reason: why) }
        // Before 1.6, torch.save wrote a bare pickle stream (its magic number first).
        if data.count >= 2, data[data.startIndex] == 0x80, data[data.startIndex + 1] == 0x02 {
            throw bad(
                "a PyTorch checkpoint in the format before PyTorch 1.6, which is not read; re-save it with a newer "
                    + "torch (torch.save of the state dict) or as safetensors")
        }
        guard data.starts(with: [0x50, 0x4B, 0x03, 0x04]) else {
            throw bad("not a PyTorch checkpoint (a zip archive holding data.pkl)")
        }
        let archive = try ZipArchive(data: data, path: path)
        // The root folder is whatever torch was given as the file's name: the one holding data.pkl.
        guard let pickle = archive.members.first(where: { $0.name.hasSuffix("data.pkl") }) else {
            throw bad("the archive has no data.pkl")
        }
        let root = String(pickle.name.dropLast("data.pkl".count))
        func stored(_ m: ZipArchive.Member) throws -> Range<Int> {
            guard m.method == 0 else { throw bad("\(m.name) is compressed (method \(m.method)); torch stores members") }
            return m.bytes
        }
        if let order = archive.member(root + "byteorder") {
            let text = String(decoding: data[try stored(order)], as: UTF8.self)
            guard text == "little" else { throw bad("byteorder is \"\(text)\"; only little-endian is read") }
        }
        let tensors = try StateDictUnpickler.read(data.subdata(in: try stored(pickle)), path: path) { value in
            guard case .dictionary(let dict) = value else {
                throw bad("data.pkl holds \(value.kind), not a state dict (save model.state_dict())")
            }
            var tensors: [SafeTensorInfo] = []
            var seen = Set<String>()
            for (key, v) in zip(dict.keys, dict.values) {
                guard case .string(let name) = key else { throw bad("a state dict key is \(key.kind), not a string") }
                guard case .tensor(let t) = v else {
                    throw bad("entry '\(name)' is \(v.kind), not a tensor (save model.state_dict())")
                }
                guard seen.insert(name).inserted else { throw bad("tensor '\(name)' appears twice") }
                guard let member = archive.member(root + "data/" + t.storage.key) else {
                    throw bad("tensor '\(name)': its storage data/\(t.storage.key) is not in the archive")
                }
                let bytes = try stored(member)
                let size = t.storage.dtype.byteSize
                guard t.storage.count <= bytes.count / size else {
                    throw bad(
                        "storage data/\(t.storage.key) holds \(bytes.count) bytes, fewer than its \(t.storage.count) elements"
                    )
                }
                // Elements the view reaches, and whether it is the row-major layout of its shape.
                var count = 1
                var expected = 1
                var contiguous = true
                for (d, s) in zip(t.shape, t.strides).reversed() {
                    let (c, o) = count.multipliedReportingOverflow(by: d)
                    guard !o else { throw bad("tensor '\(name)': shape \(t.shape) overflows") }
                    count = c
                    if d > 1, s != expected { contiguous = false }
                    expected = expected.multipliedReportingOverflow(by: max(d, 1)).partialValue
                }
                guard contiguous else {
                    throw bad(
                        "tensor '\(name)' is a strided view (size \(t.shape), stride \(t.strides)); save it .contiguous()"
                    )
                }
                guard t.offset <= t.storage.count, count <= t.storage.count - t.offset else {
                    throw bad("tensor '\(name)' (offset \(t.offset), \(count) elements) runs past its storage")
                }
                let start = bytes.lowerBound + t.offset * size
                tensors.append(
                    SafeTensorInfo(
                        name: name, dtype: t.storage.dtype, shape: t.shape, byteRange: start..<(start + count * size)))
            }
            return tensors
        }
        return SafeTensorsFile(name: path, data: data, tensors: tensors)
    }
}
