//! `drover convert FILE`: an ecosystem file (`ecosystem.config.js` evaluated by node,
//! or JSON, also a PM2 `.json` file written as JavaScript) printed as the YAML drover
//! reads, to move a PM2 setup over once.

use std::path::PathBuf;

use clap::Args;

use crate::error::Error;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// An ecosystem file: *.config.js, .cjs, .mjs (evaluated with node), .json or .yaml.
    pub file: PathBuf,
}

pub fn run(args: ConvertArgs) -> Result<(), Error> {
    let value: yaml_serde::Value = if crate::js_ecosystem::is_js_ecosystem(&args.file) {
        let json = crate::js_ecosystem::evaluate(&args.file).map_err(Error::Usage)?;
        serde_json::from_str(&json)
            .map_err(|e| Error::Usage(format!("{}: {e}", args.file.display())))?
    } else if crate::config::is_ecosystem_path(&args.file) {
        let text = std::fs::read_to_string(&args.file)
            .map_err(|e| Error::Usage(format!("{}: cannot read it: {e}", args.file.display())))?;
        match yaml_serde::from_str(&text.replace('\t', " ")) {
            Ok(value) => value,
            // A .json file PM2 would evaluate as JavaScript (comments, unquoted keys).
            Err(e) => match super::apps::is_javascript_json(&args.file)
                .then(|| crate::js_ecosystem::evaluate_expression(&args.file))
            {
                Some(Ok(json)) => serde_json::from_str(&json)
                    .map_err(|e| Error::Usage(format!("{}: {e}", args.file.display())))?,
                _ => return Err(Error::Usage(format!("{}: {e}", args.file.display()))),
            },
        }
    } else {
        return Err(Error::Usage(format!(
            "{}: not an ecosystem file (*.config.js, .cjs, .mjs, .json, .yaml, .yml)",
            args.file.display()
        )));
    };
    let yaml = yaml_serde::to_string(&value)
        .map_err(|e| Error::Usage(format!("{}: {e}", args.file.display())))?;
    print!("{yaml}");
    Ok(())
}
