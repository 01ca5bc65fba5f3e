import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

/// `bert inspect`: the config and every tensor.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a model folder's config and every tensor's name, dtype and shape.")

    @Option(
        help:
            "A model folder (config.json and model.safetensors or pytorch_model.bin, sharded or not), or a Hugging Face model id (ORG/NAME)."
    )
    var model: String
    @OptionGroup var hub: RevisionOption

    func run() throws {
        let folder = try hub.folder(model)
        let configURL = folder.appendingPathComponent("config.json")
        let config = try BertConfig(contentsOf: configURL)
        print("config.json:")
        print(String(decoding: config.jsonData(), as: UTF8.self), terminator: "")
        let file = try ModelWeights.open(in: folder)
        print(
            "\(ModelWeights.file(in: folder)?.lastPathComponent ?? "weights"): \(file.tensors.count) tensors"
                + (file.metadata.isEmpty ? "" : ", metadata \(file.metadata)"))
        let width = (file.tensors.map(\.name.count).max() ?? 0) + 2
        for t in file.tensors.sorted(by: { $0.name < $1.name }) {
            print(
                t.name + String(repeating: " ", count: width - t.name.count)
                    + t.dtype.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + "\(t.shape)")
        }
        let breakdown = ParameterBreakdown(file: file)
        print("parameters: \(breakdown.total)")
    }
}
