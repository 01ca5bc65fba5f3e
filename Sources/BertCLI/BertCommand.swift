import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

@main
struct Bert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bert",
        abstract: "BERT in Swift: tokenize, learn vocabularies, embed sentences, inspect and count models.",
        subcommands: [
            Tokenize.self, LearnVocab.self, Embed.self, Params.self, Inspect.self, InitModel.self, Pretrain.self,
            PrepareData.self, FillMask.self, FineTune.self, Predict.self, Evaluate.self, Features.self,
        ])
}
