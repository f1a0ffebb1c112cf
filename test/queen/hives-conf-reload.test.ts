/** The queen's hive registry and hives.conf edits made while the queen runs. */
import test from "ava";
import { rm, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { HiveRegistry } from "../../daemons/queen/hive-registry.js";
import { tempDir } from "../_helpers/temp.js";

test("the hive registry re-reads hives.conf whenever it changes (it skips the read while it does not)", async (t) => {
  const dir = await tempDir(t, "rbee-conf-");
  const file = path.join(dir, "hives.conf");
  await writeFile(file, "Host a1\n  HostName 10.0.0.1\n");
  const reg = new HiveRegistry({ hivesConf: file, timeoutBeats: 3 });
  t.teardown(() => reg.dispose());
  await reg.reload();
  t.deepEqual(reg.ids(), ["localhost", "a1"]);
  await writeFile(file, "Host a2\n  HostName 10.0.0.2\n");
  await reg.reload();
  t.deepEqual(reg.ids(), ["localhost", "a2"], "an edit of the same size is seen");
  await writeFile(file, "Host a2\n  Bogus 1\n");
  await t.throwsAsync(reg.reload(), { message: new RegExp(`^${file}:2: `) });
  await rm(file);
  await reg.reload();
  t.deepEqual(reg.ids(), ["localhost"], "a removed file means no entries");
});
