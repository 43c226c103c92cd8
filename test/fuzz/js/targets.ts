/**
 * Fuzz targets for the TypeScript readers of untrusted files (linear_head.pt): the zip reader, the restricted
 * unpickler and the torch state_dict reader with the head rules on top. A target returns normally or throws an
 * NlaError (the typed refusal every bad input must get); anything else it throws is a finding. The bounds are
 * the ones the package uses for a linear head of a small model, so memory stays bounded by construction.
 */
import { NlaError } from '../../../src/errors';
import { LinearHead } from '../../../src/head';
import { unpickle, PyTuple, type PickleValue } from '../../../src/formats/pickle';
import { STATE_DICT_GLOBALS, openTorchStateDict, readTorchStateDict } from '../../../src/formats/torch';
import { ZipArchive } from '../../../src/formats/zip';

export type FuzzTarget = (data: Buffer) => void;

function refusalOk(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NlaError)) throw err;
  }
}

const zip: FuzzTarget = (data) =>
  refusalOk(() => {
    const archive = ZipArchive.open(data, { label: 'fuzz.zip', maxEntrySize: 1 << 24 });
    for (const e of archive.entries) refusalOk(() => void archive.read(e));
  });

const pickle: FuzzTarget = (data) =>
  refusalOk(() => {
    unpickle(data, {
      globals: STATE_DICT_GLOBALS,
      // any persistent id is accepted as itself: the VM, not torch's storage rules, is under test here
      persistentLoad: (pid: PickleValue) => (pid instanceof PyTuple ? pid : null),
      label: 'fuzz.pkl',
    });
  });

const torch: FuzzTarget = (data) => {
  refusalOk(() => void readTorchStateDict(data, { fileName: 'fuzz.pt', limits: { maxElements: 1 << 22, maxStorageBytes: 1 << 24 } }));
  refusalOk(() => {
    const refs = openTorchStateDict(data, { fileName: 'fuzz.pt', limits: { maxElements: 1 << 22, maxStorageBytes: 1 << 24 } });
    let budget = 1 << 22; // what a caller of openTorchStateDict must do: bound the total it materializes
    for (const ref of refs.values()) {
      budget -= ref.numel;
      if (budget < 0) break;
      ref.read();
    }
  });
  refusalOk(() => void LinearHead.fromTorchBuffer(data, 'fuzz.pt', { inDim: 8, outDim: 8 }));
};

export const TS_TARGETS: Readonly<Record<string, FuzzTarget>> = { zip, pickle, torch };
