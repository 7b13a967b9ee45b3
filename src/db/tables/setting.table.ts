/** Row type of `anvil_settings`: process-wide values all instances must share. */
export interface SettingTable {
  name: string;
  value: string;
}
