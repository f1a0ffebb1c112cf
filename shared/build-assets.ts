/** The build's last step (`npm run build`): files made by rbee's own code that the compiled program ships with. */
import { writePrebuiltRbeeTiny } from "./rbee-tiny.js";

await writePrebuiltRbeeTiny();
