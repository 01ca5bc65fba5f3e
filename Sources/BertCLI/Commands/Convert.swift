import ArgumentParser
import Bert
import BertHub
import BertTokenizer
import Foundation

/// `bert convert`: a model folder whose weights are `pytorch_model.bin` (or sharded, in either
/// format) as the same folder with one `model.safetensors`, read without Python.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model folder's weights (pytorch_model.bin, sharded or not) as one model.safetensors.")

    @Option(
        help:
            "A model folder (config.json and pytorch_model.bin, or sharded weights), or a Hugging Face model id (ORG/NAME)."
    ) var model: String
    @OptionGroup var hub: RevisionOption
    @Option(help: "Output folder: the model's other files copied, its weights as model.safetensors.") var out: String
    @Flag(help: "Replace an output folder that holds something.") var overwrite = false

    func run() throws {
        let source = try hub.folder(model)
        let output = try OutputFolder(URL(fileURLWithPath: out), overwrite: overwrite, inputs: [source])
        let weights = try ModelWeights.open(in: source)
        let copied = try rewriteWeights(of: source, into: output) { folder in
            try ModelWeights.writeSafeTensors(weights, to: folder.appendingPathComponent("model.safetensors"))
        }
        print(
            "wrote \(output.url.path): model.safetensors (\(weights.tensors.count) tensors) and \(copied) other files"
        )
    }
}
