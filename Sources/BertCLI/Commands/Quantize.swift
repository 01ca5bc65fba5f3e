import ArgumentParser
import Bert
import BertHub
import Foundation

/// `bert quantize`: a model folder whose matrices are stored as int8 (per-row scales) or bf16.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model folder with its weight matrices in int8 (per-row scales) or bf16.",
        discussion: """
            Every matrix (the Linear weights and the embeddings) is stored in model.safetensors as \
            I8 with an F32 scale per row ("<name>_scale", value = int8 x scale, scale = max|row|/127: \
            the int8 products' own quantization) or as BF16 (nearest, ties to even); biases and \
            LayerNorm stay F32. About a quarter (int8) or half (bf16) of the FP32 file. Every \
            command loads the folder; with --precision int8 or bf16 the products use exactly the \
            stored values.
            """)

    @Option(help: "A model folder, or a Hugging Face model id (ORG/NAME).") var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Output folder: the model's other files copied, its weights quantized.") var out: String
    @Option(help: "How the matrices are stored: int8 or bf16.") var precision: StoredPrecision
    @Flag(help: "Replace an output folder that holds something.") var overwrite = false

    func run() throws {
        let source = try hub.folder(model)
        let output = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite, inputs: [source])
        let weights = try ModelWeights.open(in: source)
        let written = output.url.appendingPathComponent("model.safetensors")
        let copied = try rewriteWeights(of: source, into: output) { folder in
            try ModelWeights.writeQuantized(
                weights, precision: precision, to: folder.appendingPathComponent("model.safetensors"))
        }
        // What the weights take as FP32 (a quantized input's scales are not weights).
        let before = ParameterBreakdown(file: weights).total * 4
        let after = (try? FileManager.default.attributesOfItem(atPath: written.path)[.size] as? Int) ?? 0
        print(
            String(
                format: "wrote %@: model.safetensors in %@, %.1f MB (%.2fx of %.1f MB in FP32), and %d other files",
                output.url.path, precision.rawValue, Double(after) / 1e6, Double(after) / Double(max(before, 1)),
                Double(before) / 1e6, copied))
    }
}

extension StoredPrecision: ExpressibleByArgument {}
