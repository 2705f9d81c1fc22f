/**
 * What each examples/e2b-*.ts prints, whichever provider runs it: the E2B emulator
 * (test/adapters/e2b-examples.test.ts) or the local provider with the provider line swapped
 * (test/examples/provider-swap-examples.test.ts). `needs` names the capability an example cannot
 * run without, so that a provider lacking it skips the example visibly instead of failing it.
 */
export interface E2bExample {
  file: string;
  expected: RegExp;
  needs?: 'pause';
}

export const e2bExamples: E2bExample[] = [
  {
    file: 'e2b-run-code.ts',
    // Each stream keeps its order; between stdout and stderr there is none to keep (a step's two
    // lines are written microseconds apart and travel separately).
    expected:
      /^(?=[\s\S]*stdout: step 1 of 3[\s\S]*stdout: step 2 of 3[\s\S]*stdout: step 3 of 3)(?=[\s\S]*stderr: log: finished step 1[\s\S]*stderr: log: finished step 2[\s\S]*stderr: log: finished step 3)[\s\S]*exit 3\npython 3\.\d+/,
  },
  { file: 'e2b-server-and-tunnel.ts', expected: /GET https?:\/\/\S+ -> served from the sandbox/ },
  {
    file: 'e2b-files.ts',
    expected:
      /round trip intact: true \(28017 bytes\)\nsummary: \{"rows": 3000, "hottest": "Nairobi"\}\nlisted: notes\.txt file 36 bytes\nlisted: readings\.csv file 28017 bytes\nstat: \/tmp\/work\/summary\.json file, mode 6\d\d\nremoved: true/,
  },
  {
    file: 'e2b-watch.ts',
    expected:
      /create \/tmp\/uploads\/report\.txt[\s\S]*create \/tmp\/uploads\/images\/logo\.png[\s\S]*remove \/tmp\/uploads\/scratch\.tmp[\s\S]*create \/tmp\/uploads\/done\nthe writer exited 0\nreport\.txt: "first draft\\nsecond draft\\n"/,
  },
  {
    file: 'e2b-pty.ts',
    expected:
      /on a terminal: true, size 24 80\nstate kept: hello from \/tmp\/project\nafter resize: 43 132\ninterrupted: the job ended with 130\nshell exited 0/,
  },
  {
    file: 'e2b-pause-resume.ts',
    needs: 'pause',
    expected:
      /status: paused\ncommands wait for resume: true\nstatus: running\nthe background process counts on from where it was: true\nthe file survived: written before the pause/,
  },
  {
    file: 'e2b-snapshots.ts',
    expected:
      /snapshot taken \(the source keeps running: running\)\ncopy 0: hello from the snapshot, config present\ncopy 1: hello from the snapshot, config present\ncopies stay apart: true\nsnapshot deleted: true/,
  },
  {
    file: 'e2b-metadata-and-list.ts',
    expected:
      /tagged run-\w+: 2 sandboxes\n {2}api: name run-\w+-api, created [\dT:.Z-]+\n {2}worker: name \(none\), created [\dT:.Z-]+\nrole=api after relabelling: 2 sandboxes\ntags of the worker: \{"run":"run-\w+","role":"api","promoted":"yes"\}\nfromId finds it: true\nfromName finds the api: true\nafter terminate: 0 sandboxes/,
  },
];
